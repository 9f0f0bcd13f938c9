"""Who may call what: roles, and the admin API's allowed client address ranges."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from authkit.guards import requires_roles
from response_processor.api.context import runtime_of
from response_processor.domain import audit
from response_processor.errors import ProcessorErrorCode
from servicekit.connection import client_address
from servicekit.errors import ApiError

MANAGE_ROLES: Final = ("admin",)
READ_ROLES: Final = ("operator", "admin")

MANAGE: Final = requires_roles(*MANAGE_ROLES)
"""Changes: admins only."""

READ: Final = requires_roles(*READ_ROLES)
"""Reading, and retrying dead letters: operators and admins."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(ranges: Sequence[str]) -> list[Network]:
    """Address ranges like `10.20.0.0/16` or `::1/128`; ValueError names a bad one."""
    return [ipaddress.ip_network(text.strip(), strict=False) for text in ranges]


def address_guard(networks: Sequence[Network]) -> Guard:
    """Refuse (403, audited) clients outside `networks`; no networks admits everyone."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
    ) -> None:
        if not networks:
            return
        address = client_address(connection)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if ip is not None and any(ip in network for network in networks):
            return
        async with runtime_of(connection).pool.acquire() as conn:
            await audit.record(
                conn,
                audit.Actor(None, None, address),
                audit.Action.ADMIN_ACCESS_REFUSED,
                target=connection.url.path,
                outcome="refused",
            )
        raise ApiError(
            403,
            str(ProcessorErrorCode.ADDRESS_NOT_ALLOWED),
            "The admin API does not accept requests from this address.",
        )

    return guard

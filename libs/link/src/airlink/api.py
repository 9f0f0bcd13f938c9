"""The operators' view of the link over HTTP: a controller both services mount."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.connection import ASGIConnection
from litestar.params import QueryParameter
from litestar.types import Guard

from airlink.batches import InboundBatch, OutboundBatch, list_inbound, list_outbound
from servicekit.database import Pool
from servicekit.paging import Cursor, Page

Limit = Annotated[int, QueryParameter(ge=1, le=500)]
PoolOf = Callable[[ASGIConnection[Any, Any, Any, Any]], Pool]


class RecentBatches(msgspec.Struct, frozen=True):
    """The newest batches each way."""

    outbound: list[OutboundBatch]
    inbound: list[InboundBatch]


def batches_controller(pool_of: PoolOf, *, path: str, guards: Sequence[Guard]) -> type[Controller]:
    """GET {path} (both ways), {path}/outbound and {path}/inbound (paged), newest first."""
    prefix, guard_list = path, list(guards)

    class BatchesController(Controller):
        """Batches sent to the peer and received from it."""

        path = prefix
        tags = ("batches",)
        guards = guard_list

        @get("/")
        async def recent(self, request: Request[Any, Any, Any], limit: Limit = 20) -> RecentBatches:
            """The newest batches each way."""
            async with pool_of(request).acquire() as conn:
                outbound = await list_outbound(conn, limit=limit)
                return RecentBatches(outbound.items, (await list_inbound(conn, limit=limit)).items)

        @get("/outbound")
        async def outbound(
            self,
            request: Request[Any, Any, Any],
            cursor: Cursor = None,
            limit: Limit = 100,
        ) -> Page[OutboundBatch]:
            """Sent batches with their publication and acknowledgement."""
            async with pool_of(request).acquire() as conn:
                return await list_outbound(conn, cursor=cursor, limit=limit)

        @get("/inbound")
        async def inbound(
            self,
            request: Request[Any, Any, Any],
            cursor: Cursor = None,
            limit: Limit = 100,
        ) -> Page[InboundBatch]:
            """Received batches, each applied once however often it came."""
            async with pool_of(request).acquire() as conn:
                return await list_inbound(conn, cursor=cursor, limit=limit)

    return BatchesController

"""What a request says about its caller, read one way by every service."""

from __future__ import annotations

from typing import Any, Final

from litestar.connection import ASGIConnection

__all__ = ["UNKNOWN_ADDRESS", "client_address"]

UNKNOWN_ADDRESS: Final = "unknown"
"""The address of a connection whose server reported no peer."""


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The peer address of the connection (proxies are not trusted to say otherwise)."""
    return connection.client.host if connection.client else UNKNOWN_ADDRESS

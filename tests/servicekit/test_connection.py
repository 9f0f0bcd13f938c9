"""The caller's address: the peer the server saw, never a header the client wrote."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get
from litestar.testing import AsyncTestClient

from servicekit.connection import UNKNOWN_ADDRESS, client_address


@get("/address")
async def address(request: Request[Any, Any, Any]) -> str:
    return client_address(request)


async def test_the_address_is_the_peer_and_forwarding_headers_are_ignored() -> None:
    async with AsyncTestClient(Litestar([address])) as client:
        response = await client.get(
            "/address", headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
        )
    assert response.text == "testclient"


def test_a_connection_without_a_peer_is_unknown() -> None:
    scope: Any = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None}
    assert client_address(Request(scope)) == UNKNOWN_ADDRESS == "unknown"

"""What every route handler reaches for: the runtime, the caller, the caller's address."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from authkit.identity import current_user
from response_processor.domain.audit import Actor
from response_processor.runtime import Runtime


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    """The process's runtime, built by the app's lifespan."""
    runtime: Runtime = connection.app.state.runtime
    return runtime


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The peer address of the connection (proxies are not trusted to say otherwise)."""
    return connection.client.host if connection.client else "unknown"


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    """The signed-in user as an audit actor."""
    user = current_user(connection)
    return Actor(user.id, None, client_address(connection))

"""What every route handler reaches for: the runtime and the caller as an audit actor."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from authkit.identity import current_user
from response_processor.runtime import Runtime
from servicekit.audit import Actor
from servicekit.connection import client_address


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    """The process's runtime, built by the app's lifespan."""
    runtime: Runtime = connection.app.state.runtime
    return runtime


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    """The signed-in user as an audit actor."""
    user = current_user(connection)
    return Actor(user.id, None, client_address(connection))

"""What every route handler reaches for: the runtime and the signed-in gateway user."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.identity import current_user
from request_gateway.changes import ChangeFeed
from request_gateway.identity.cache import GatewayUser
from request_gateway.runtime import Runtime


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    """The process's runtime, built by the app's lifespan."""
    runtime: Runtime = connection.app.state.runtime
    return runtime


def change_feed_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ChangeFeed:
    """The process's feed of request changes (long polls, event streams)."""
    feed: ChangeFeed = connection.app.state.changes
    return feed


async def gateway_user(connection: ASGIConnection[Any, Any, Any, Any]) -> GatewayUser:
    """The signed-in user's synced record (from the identity cache)."""
    user = await runtime_of(connection).identity.user(current_user(connection).id)
    if user is None:  # removed by a sync since the middleware looked
        raise AuthError(AuthErrorCode.TOKEN_INVALID)
    return user

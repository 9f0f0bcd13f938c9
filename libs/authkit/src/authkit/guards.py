"""Litestar guards: role checks and the must-change-password gate.

A guard is ``(connection, route_handler) -> None`` and raises to refuse. These read the
`AuthUser` that `authkit.middleware.AuthMiddleware` set on the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.identity import AuthUser, current_user

__all__ = [
    "ALLOW_PASSWORD_CHANGE_PENDING",
    "PASSWORD_CHANGE_PENDING_OPT",
    "password_change_guard",
    "requires_roles",
]

AsyncGuard = Callable[
    [ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]
]
"""A Litestar guard that Litestar awaits on the event loop (a sync one goes to a thread)."""

ALLOW_PASSWORD_CHANGE_PENDING: Final = "allow_password_change_pending"  # noqa: S105 (opt key)
PASSWORD_CHANGE_PENDING_OPT: Final[Mapping[str, bool]] = {ALLOW_PASSWORD_CHANGE_PENDING: True}
"""``opt`` for the routes a user who must change their password may still use."""


def requires_roles(*roles: str) -> AsyncGuard:
    """A guard admitting users who hold at least one of ``roles`` (403 ``forbidden`` otherwise)."""
    if not roles:
        raise ValueError("requires_roles needs at least one role")
    wanted = frozenset(roles)

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
    ) -> None:
        # Litestar's automatic OPTIONS handler inherits its controller's guards; a CORS
        # preflight carries no credential and learns only the Allow list, so it passes.
        if connection.scope.get("method") == "OPTIONS":
            return
        if not current_user(connection).has_any_role(*wanted):
            raise AuthError(AuthErrorCode.FORBIDDEN)

    return guard


async def password_change_guard(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Register app-wide: a user who must change their password gets 403 except where allowed.

    (Async on purpose: Litestar runs a synchronous guard in a worker thread, on every request.)
    """
    user = connection.scope.get("user")
    if not isinstance(user, AuthUser) or not user.must_change_password:
        return  # public routes have no user; everyone else has nothing pending
    if route_handler.opt.get(ALLOW_PASSWORD_CHANGE_PENDING):
        return
    raise AuthError(AuthErrorCode.PASSWORD_CHANGE_REQUIRED)

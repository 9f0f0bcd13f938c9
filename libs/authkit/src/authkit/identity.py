"""Who is making a request: the `AuthUser` the middleware puts on ``request.user``."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import msgspec
from litestar.connection import ASGIConnection

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.tokens import AccessTokenClaims

__all__ = ["AuthUser", "Role", "current_user", "user_from_claims"]


class Role(StrEnum):
    """The roles Airlock knows."""

    USER = "user"
    OPERATOR = "operator"
    ADMIN = "admin"


class AuthUser(msgspec.Struct, frozen=True):
    """An authenticated user as handlers and guards see it."""

    id: uuid.UUID
    roles: frozenset[str] = frozenset()
    session_version: int = 0
    must_change_password: bool = False
    active: bool = True

    def has_any_role(self, *roles: str) -> bool:
        """Tell whether the user holds at least one of ``roles``."""
        return not self.roles.isdisjoint(roles)


def user_from_claims(claims: AccessTokenClaims) -> AuthUser:
    """The user an access token describes, as it was when the token was issued."""
    return AuthUser(
        id=claims.sub,
        roles=frozenset(claims.roles),
        session_version=claims.pv,
        must_change_password=claims.mcp,
    )


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthUser:
    """The request's authenticated user; 401 ``not_authenticated`` on a route without one."""
    user = connection.scope.get("user")
    if not isinstance(user, AuthUser):
        raise AuthError(AuthErrorCode.NOT_AUTHENTICATED)
    return user

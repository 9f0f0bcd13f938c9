"""Guards: roles (any of), and the gate for users who must change their password."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import get
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.guards import PASSWORD_CHANGE_PENDING_OPT, password_change_guard, requires_roles
from authkit.identity import AuthUser, Role

USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


@get("/anything")
async def ordinary_route() -> None:
    return None


@get("/auth/password", opt=dict(PASSWORD_CHANGE_PENDING_OPT))
async def password_route() -> None:
    return None


def _connection(user: AuthUser | None) -> ASGIConnection[Any, Any, Any, Any]:
    scope: dict[str, Any] = {"type": "http", "path": "/", "headers": [], "state": {}}
    if user is not None:
        scope["user"] = user
    return ASGIConnection(scope)  # type: ignore[arg-type]


def _user(*roles: str, must_change_password: bool = False) -> AuthUser:
    return AuthUser(id=USER_ID, roles=frozenset(roles), must_change_password=must_change_password)


async def _refusal(
    guard: Any, user: AuthUser | None, route: BaseRouteHandler = ordinary_route
) -> AuthErrorCode:
    with pytest.raises(AuthError) as caught:
        await guard(_connection(user), route)
    return AuthErrorCode(caught.value.code)


async def test_requires_roles_admits_a_user_with_one_of_the_roles() -> None:
    guard = requires_roles(Role.OPERATOR, Role.ADMIN)
    await guard(_connection(_user(Role.ADMIN)), ordinary_route)
    await guard(_connection(_user(Role.USER, Role.OPERATOR)), ordinary_route)


async def test_requires_roles_refuses_a_user_without_them_with_403() -> None:
    guard = requires_roles(Role.ADMIN)
    assert await _refusal(guard, _user(Role.USER, Role.OPERATOR)) is AuthErrorCode.FORBIDDEN
    assert await _refusal(guard, _user()) is AuthErrorCode.FORBIDDEN


async def test_requires_roles_on_a_route_without_a_user_answers_401() -> None:
    assert await _refusal(requires_roles(Role.USER), None) is AuthErrorCode.NOT_AUTHENTICATED


def test_requires_roles_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        requires_roles()


async def test_a_user_who_must_change_their_password_is_stopped_everywhere_else() -> None:
    pending = _user(Role.ADMIN, must_change_password=True)
    assert await _refusal(password_change_guard, pending) is AuthErrorCode.PASSWORD_CHANGE_REQUIRED


async def test_the_password_change_route_stays_open_to_them() -> None:
    pending = _user(Role.ADMIN, must_change_password=True)
    await password_change_guard(_connection(pending), password_route)


async def test_users_with_nothing_pending_and_public_routes_pass_the_gate() -> None:
    await password_change_guard(_connection(_user(Role.USER)), ordinary_route)
    await password_change_guard(_connection(None), ordinary_route)

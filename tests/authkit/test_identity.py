"""The authenticated user: built from token claims, read back from the connection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.connection import ASGIConnection

from authkit.error_codes import AuthError
from authkit.identity import AuthUser, Role, current_user, user_from_claims
from authkit.tokens import AccessTokenIssuer
from tests.authkit.conftest import AUDIENCE, ISSUER, SECRET

USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _connection(user: object | None) -> ASGIConnection[Any, Any, Any, Any]:
    scope: dict[str, Any] = {"type": "http", "path": "/", "headers": [], "state": {}}
    if user is not None:
        scope["user"] = user
    return ASGIConnection(scope)  # type: ignore[arg-type]


def test_a_token_describes_its_user() -> None:
    issued = AccessTokenIssuer(SECRET, issuer=ISSUER, audience=AUDIENCE).issue(
        USER_ID, roles=[Role.ADMIN], session_version=4, must_change_password=True
    )
    assert user_from_claims(issued.claims) == AuthUser(
        id=USER_ID,
        roles=frozenset({"admin"}),
        session_version=4,
        must_change_password=True,
        active=True,
    )


def test_current_user_returns_the_user() -> None:
    user = AuthUser(id=USER_ID)
    assert current_user(_connection(user)) is user


@pytest.mark.parametrize("scope_user", [None, "bob"])
def test_current_user_without_an_auth_user_answers_401(scope_user: object | None) -> None:
    with pytest.raises(AuthError) as caught:
        current_user(_connection(scope_user))
    assert (caught.value.status_code, caught.value.code) == (401, "not_authenticated")


def test_has_any_role() -> None:
    user = AuthUser(id=USER_ID, roles=frozenset({Role.USER}))
    assert user.has_any_role(Role.USER, Role.ADMIN)
    assert not user.has_any_role(Role.ADMIN)
    assert not user.has_any_role()

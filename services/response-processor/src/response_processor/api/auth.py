"""`/api/v1/auth`: login, refresh, logout, password change, and `/api/v1/me`."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.guards import PASSWORD_CHANGE_PENDING_OPT
from authkit.identity import current_user
from authkit.passwords import verify_password
from authkit.sessions import issue_refresh_token, revoke_refresh_token, rotate_refresh_token
from response_processor.api.context import client_address, runtime_of
from response_processor.domain import audit
from response_processor.domain.users import UserOut, get_user, set_password
from servicekit.middleware import PUBLIC_ENDPOINT_OPT

TOKEN_TYPE: Final = "bearer"  # noqa: S105 - the OAuth token type name
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]

FIND_SQL: Final = """
    SELECT id, username, password_hash, roles, active, must_change_password, session_version
    FROM app_user WHERE lower(username) = lower($1)
"""


class LoginIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DESIGN: `{"username", "password"}`."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Secret


class RefreshIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DESIGN: `{"refresh_token"}`."""

    refresh_token: Secret


class PasswordIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DESIGN: `{"current_password", "new_password"}`."""

    current_password: Secret
    new_password: Secret


class TokensOut(msgspec.Struct, frozen=True):
    """DESIGN: `{"access_token", "refresh_token", "token_type", "expires_in"}`."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class AuthController(Controller):
    """Sessions of the processor's admin API."""

    path = "/api/v1/auth"
    tags = ("auth",)

    @post("/login", opt=dict(PUBLIC_ENDPOINT_OPT), status_code=HTTP_200_OK)
    async def login(self, request: Request[Any, Any, Any], data: JSONBody[LoginIn]) -> TokensOut:
        """Exchange a username and password for an access token and a refresh token."""
        runtime = runtime_of(request)
        address = client_address(request)
        decision = await runtime.login_limiter.check(data.username, address)
        if not decision.allowed:
            await _audit_failure(request, data.username, "rate_limited")
            decision.raise_if_denied()
        async with runtime.pool.acquire() as conn:
            row = await conn.fetchrow(FIND_SQL, data.username)
        stored_hash = row["password_hash"] if row is not None else None
        if not await verify_password(stored_hash, data.password) or row is None:
            await _audit_failure(request, data.username, "bad_credentials")
            raise AuthError(AuthErrorCode.INVALID_CREDENTIALS)
        if not row["active"]:
            await _audit_failure(request, data.username, "inactive")
            raise AuthError(AuthErrorCode.INVALID_CREDENTIALS)
        await runtime.login_limiter.record_success(data.username, address, decision)
        return await _start_session(request, row)

    @post("/refresh", opt=dict(PUBLIC_ENDPOINT_OPT), status_code=HTTP_200_OK)
    async def refresh(
        self, request: Request[Any, Any, Any], data: JSONBody[RefreshIn]
    ) -> TokensOut:
        """Rotate a refresh token; reusing a rotated one revokes its whole family."""
        runtime = runtime_of(request)
        async with runtime.pool.acquire() as conn:
            rotated = await rotate_refresh_token(
                conn,
                data.refresh_token,
                user_agent=request.headers.get("user-agent"),
                ip=client_address(request),
            )
            user = await get_user(conn, rotated.user_id)
        if not user.active:
            raise AuthError(AuthErrorCode.ACCOUNT_INACTIVE)
        access = runtime.issuer.issue(
            user.id,
            roles=user.roles,
            session_version=user.session_version,
            must_change_password=user.must_change_password,
        )
        return TokensOut(access.token, rotated.token, TOKEN_TYPE, access.expires_in)

    @post("/logout", opt=dict(PUBLIC_ENDPOINT_OPT), status_code=HTTP_204_NO_CONTENT)
    async def logout(self, request: Request[Any, Any, Any], data: JSONBody[RefreshIn]) -> None:
        """Revoke the refresh token's family; its access tokens expire on their own."""
        runtime = runtime_of(request)
        async with runtime.pool.acquire() as conn, conn.transaction():
            user_id = await revoke_refresh_token(conn, data.refresh_token)
            if user_id is not None:
                actor = audit.Actor(user_id, None, client_address(request))
                await audit.record(conn, actor, audit.Action.LOGOUT)

    @post("/password", opt=dict(PASSWORD_CHANGE_PENDING_OPT), status_code=HTTP_204_NO_CONTENT)
    async def change_password(
        self, request: Request[Any, Any, Any], data: JSONBody[PasswordIn]
    ) -> None:
        """Change one's own password; every session ends, log in again with the new one."""
        runtime = runtime_of(request)
        user = current_user(request)
        async with runtime.pool.acquire() as conn:
            stored_hash = await conn.fetchval(
                "SELECT password_hash FROM app_user WHERE id = $1", user.id
            )
            if not await verify_password(stored_hash, data.current_password):
                raise AuthError(AuthErrorCode.INVALID_CREDENTIALS, "The current password is wrong.")
            await set_password(conn, user.id, data.new_password)


@get("/api/v1/me", tags=["auth"])
async def me(request: Request[Any, Any, Any]) -> UserOut:
    """The signed-in user."""
    async with runtime_of(request).pool.acquire() as conn:
        return await get_user(conn, current_user(request).id)


async def _start_session(request: Request[Any, Any, Any], row: Any) -> TokensOut:
    runtime = runtime_of(request)
    access = runtime.issuer.issue(
        row["id"],
        roles=row["roles"],
        session_version=row["session_version"],
        must_change_password=row["must_change_password"],
    )
    async with runtime.pool.acquire() as conn, conn.transaction():
        refresh_token, _ = await issue_refresh_token(
            conn,
            row["id"],
            user_agent=request.headers.get("user-agent"),
            ip=client_address(request),
        )
        await conn.execute("UPDATE app_user SET last_login_at = now() WHERE id = $1", row["id"])
        actor = audit.Actor(row["id"], row["username"], client_address(request))
        await audit.record(conn, actor, audit.Action.LOGIN)
    return TokensOut(access.token, refresh_token, TOKEN_TYPE, access.expires_in)


async def _audit_failure(request: Request[Any, Any, Any], username: str, why: str) -> None:
    async with runtime_of(request).pool.acquire() as conn:
        actor = audit.Actor(None, username[:64], client_address(request))
        await audit.record(
            conn, actor, audit.Action.LOGIN_FAILED, outcome="refused", details={"why": why}
        )

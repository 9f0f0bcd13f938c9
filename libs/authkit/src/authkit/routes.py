"""The login, refresh and logout routes both APIs serve, over each service's own accounts.

A service mounts ``auth_controller(services)``, where ``services(connection)`` returns its
`AuthServices`: the database pool (which holds authkit's ``auth_refresh_token`` table), the
access-token issuer, the login limiter, and an `AccountStore` — the service's users table
and audit log, seen as the routes need them.

- ``POST {path}/login`` ``{"username", "password"}`` → 200 `TokensOut`. The limiter is asked
  first (a refused attempt is audited ``rate_limited`` and answered 429); an unknown user
  costs a full password verification too; a wrong password or an inactive account is
  audited (``bad_credentials``, ``inactive``) and answered 401 ``invalid_credentials``,
  never saying which. A success clears the username's failures; the refresh token, the
  store's ``on_login`` and the ``login`` audit entry commit in one transaction.
- ``POST {path}/refresh`` ``{"refresh_token"}`` → 200 `TokensOut`: the token is rotated
  (a reused one revokes its family), the account read fresh: gone, or a session version
  other than the family's (the password changed since the login) → 401 ``token_invalid``,
  inactive → 403 ``account_inactive``, each revoking the family; the access token carries
  its current roles.

Every other route that checks a password (a password change's current password) calls
`verify_password_attempt`, the login's own check: it counts against the same limits.
- ``POST {path}/logout`` ``{"refresh_token"}`` → 204: the token's family is revoked and,
  when the token was known, ``logout`` is audited. An unknown token is 204 as well.

All three need no credential (servicekit's `NO_CREDENTIAL_OPT`: unlike the operational
endpoints they are counted in the HTTP metrics and written to the access log). Passwords and
tokens never reach a log line or an error answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Protocol

import msgspec
from litestar import Controller, Request, post
from litestar.connection import ASGIConnection
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.login_limits import LoginLimiter
from authkit.passwords import verify_password
from authkit.sessions import (
    DEFAULT_POLICY,
    RefreshTokenPolicy,
    RevokeReason,
    RotatedRefreshToken,
    issue_refresh_token,
    revoke_family,
    revoke_refresh_token,
    rotate_refresh_token,
)
from authkit.tokens import AccessTokenIssuer, IssuedAccessToken
from servicekit.connection import client_address
from servicekit.database import Connection, Pool
from servicekit.middleware import NO_CREDENTIAL_OPT

__all__ = [
    "TOKEN_TYPE",
    "Account",
    "AccountStore",
    "AuthEvent",
    "AuthServices",
    "LoginIn",
    "RefreshIn",
    "ServicesOf",
    "TokensOut",
    "auth_controller",
    "log_in",
    "log_out",
    "verify_password_attempt",
]

TOKEN_TYPE: Final = "bearer"  # noqa: S105 - the OAuth token type name
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
# No U+0000: PostgreSQL's text cannot hold it, so the lookup and the audit record would fail.
Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]


class LoginIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DESIGN: `{"username", "password"}`."""

    username: Username
    password: Secret


class RefreshIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DESIGN: `{"refresh_token"}`."""

    refresh_token: Secret


class TokensOut(msgspec.Struct, frozen=True):
    """DESIGN: `{"access_token", "refresh_token", "token_type", "expires_in"}`."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class Account(msgspec.Struct, frozen=True):
    """A user as the login routes need it."""

    id: uuid.UUID
    username: str
    password_hash: str | None
    roles: frozenset[str]
    active: bool
    must_change_password: bool
    session_version: int

    def __repr__(self) -> str:
        # The hash is a credential too: keep it out of reprs that end up in logs and tracebacks.
        return (
            f"Account(id={self.id!r}, username={self.username!r}, password_hash=<hidden>, "
            f"roles={self.roles!r}, active={self.active!r}, "
            f"must_change_password={self.must_change_password!r}, "
            f"session_version={self.session_version!r})"
        )


class AuthEvent(StrEnum):
    """What the routes ask the store to audit."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"


class AccountStore(Protocol):
    """A service's users and audit log, as the login routes use them."""

    async def find_by_username(self, conn: Connection, username: str) -> Account | None:
        """The account a login names (the service decides how names compare), or None."""
        ...

    async def get(self, conn: Connection, user_id: uuid.UUID) -> Account | None:
        """The account of a refresh token, or None when it no longer exists."""
        ...

    async def on_login(self, conn: Connection, account: Account) -> None:
        """Note a successful login (e.g. ``last_login_at``), inside the login's transaction."""
        ...

    async def audit(
        self,
        conn: Connection,
        event: AuthEvent,
        *,
        user_id: uuid.UUID | None,
        username: str | None,
        address: str,
        why: str | None = None,
    ) -> None:
        """Record ``event`` in the service's audit log (failures: ``user_id`` None, ``why`` set)."""
        ...


@dataclass(frozen=True)
class AuthServices:
    """What the routes work with; ``policy`` None means authkit's `DEFAULT_POLICY`."""

    pool: Pool
    issuer: AccessTokenIssuer
    login_limiter: LoginLimiter
    store: AccountStore
    policy: RefreshTokenPolicy | None = None

    @property
    def refresh_policy(self) -> RefreshTokenPolicy:
        """The refresh-token lifetimes in force: ``policy``, or the default one."""
        return self.policy if self.policy is not None else DEFAULT_POLICY


ServicesOf = Callable[[ASGIConnection[Any, Any, Any, Any]], AuthServices]
"""How the routes find a service's `AuthServices` for a request (e.g. from ``app.state``)."""


def auth_controller(
    services: ServicesOf, *, path: str = "/api/v1/auth", tags: Sequence[str] = ("auth",)
) -> type[Controller]:
    """POST {path}/login, /refresh, /logout (see the module docstring), as a controller."""
    # A class body cannot read a function's parameter it also assigns: rename them first.
    prefix, tag_names = path, list(tags)

    class AuthController(Controller):
        """Sessions: log in, refresh, log out."""

        path = prefix
        tags = tag_names

        @post("/login", opt=dict(NO_CREDENTIAL_OPT), status_code=HTTP_200_OK)
        async def login(
            self, request: Request[Any, Any, Any], data: JSONBody[LoginIn]
        ) -> TokensOut:
            """Exchange a username and password for an access token and a refresh token."""
            return await log_in(services(request), request, data)

        @post("/refresh", opt=dict(NO_CREDENTIAL_OPT), status_code=HTTP_200_OK)
        async def refresh(
            self, request: Request[Any, Any, Any], data: JSONBody[RefreshIn]
        ) -> TokensOut:
            """Rotate a refresh token; reusing a rotated one revokes its whole family."""
            return await _refresh(services(request), request, data)

        @post("/logout", opt=dict(NO_CREDENTIAL_OPT), status_code=HTTP_204_NO_CONTENT)
        async def logout(self, request: Request[Any, Any, Any], data: JSONBody[RefreshIn]) -> None:
            """Revoke the refresh token's family; its access tokens expire on their own."""
            await log_out(services(request), request, data)

    return AuthController


async def log_in(
    services: AuthServices, request: Request[Any, Any, Any], data: LoginIn
) -> TokensOut:
    """The login route's work: limit, verify, audit, start a session (also for web sign-in)."""
    address = client_address(request)
    account = await verify_password_attempt(services, data.username, data.password, address)
    return await _start_session(services, request, account, address)


async def verify_password_attempt(
    services: AuthServices, username: str, password: str, address: str
) -> Account:
    """Check a username and password as one login attempt; return the active account.

    Every password check goes through here (a login, the current password of a password
    change), so each counts against the same per-username and per-address limits: 429
    ``too_many_login_attempts`` once they are spent, 401 ``invalid_credentials`` for a
    wrong password, an unknown user or an inactive account (never saying which), each
    refusal audited. A success clears the username's failures.
    """
    decision = await services.login_limiter.check(username, address)
    if not decision.allowed:
        await _audit_refusal(services, username, address, "rate_limited")
        decision.raise_if_denied()
    async with services.pool.acquire() as conn:
        account = await services.store.find_by_username(conn, username)
    # Verified even for an unknown user (against a dummy hash): timing reveals no usernames.
    stored_hash = account.password_hash if account is not None else None
    if not await verify_password(stored_hash, password) or account is None:
        await _audit_refusal(services, username, address, "bad_credentials")
        raise AuthError(AuthErrorCode.INVALID_CREDENTIALS)
    if not account.active:
        await _audit_refusal(services, username, address, "inactive")
        raise AuthError(AuthErrorCode.INVALID_CREDENTIALS)
    await services.login_limiter.record_success(username, address, decision)
    return account


async def _start_session(
    services: AuthServices, request: Request[Any, Any, Any], account: Account, address: str
) -> TokensOut:
    access = _access_token(services, account)
    async with services.pool.acquire() as conn, conn.transaction():
        refresh_token, _ = await issue_refresh_token(
            conn,
            account.id,
            session_version=account.session_version,
            policy=services.refresh_policy,
            user_agent=request.headers.get("user-agent"),
            ip=address,
        )
        await services.store.on_login(conn, account)
        await services.store.audit(
            conn, AuthEvent.LOGIN, user_id=account.id, username=account.username, address=address
        )
    return TokensOut(access.token, refresh_token, TOKEN_TYPE, access.expires_in)


async def _refresh(
    services: AuthServices, request: Request[Any, Any, Any], data: RefreshIn
) -> TokensOut:
    """The refresh route's work: rotate the token, re-read the account, issue an access token."""
    async with services.pool.acquire() as conn:
        # No transaction of ours around it: a reuse's family revocation must commit.
        rotated = await rotate_refresh_token(
            conn,
            data.refresh_token,
            policy=services.refresh_policy,
            user_agent=request.headers.get("user-agent"),
            ip=client_address(request),
        )
        account = await services.store.get(conn, rotated.user_id)
        refusal = _refresh_refusal(account, rotated)
        if refusal is not None:
            # The successor just issued must not stay usable either.
            await revoke_family(conn, rotated.family_id, reason=RevokeReason.STALE_SESSION)
            raise AuthError(refusal)
    assert account is not None
    access = _access_token(services, account)
    return TokensOut(access.token, rotated.token, TOKEN_TYPE, access.expires_in)


def _refresh_refusal(account: Account | None, rotated: RotatedRefreshToken) -> AuthErrorCode | None:
    """Why a rotated token's account may not have a new access token, or None."""
    if account is None:
        return AuthErrorCode.TOKEN_INVALID
    if not account.active:
        return AuthErrorCode.ACCOUNT_INACTIVE
    # A family started before the session version moved on (a password change, a
    # deactivation) ends here even if its revocation was missed; None: from before
    # authkit recorded the version, so it cannot be shown to be current.
    if rotated.session_version != account.session_version:
        return AuthErrorCode.TOKEN_INVALID
    return None


async def log_out(services: AuthServices, request: Request[Any, Any, Any], data: RefreshIn) -> None:
    """The logout route's work: revoke the token's family and audit it (also for web sign-out)."""
    async with services.pool.acquire() as conn, conn.transaction():
        user_id = await revoke_refresh_token(conn, data.refresh_token)
        if user_id is not None:
            await services.store.audit(
                conn,
                AuthEvent.LOGOUT,
                user_id=user_id,
                username=None,
                address=client_address(request),
            )


def _access_token(services: AuthServices, account: Account) -> IssuedAccessToken:
    return services.issuer.issue(
        account.id,
        roles=account.roles,
        session_version=account.session_version,
        must_change_password=account.must_change_password,
    )


async def _audit_refusal(services: AuthServices, username: str, address: str, why: str) -> None:
    # Whoever failed is not known to be the account's user: no user id.
    async with services.pool.acquire() as conn:
        await services.store.audit(
            conn, AuthEvent.LOGIN_FAILED, user_id=None, username=username, address=address, why=why
        )

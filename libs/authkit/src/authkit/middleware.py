"""The authentication middleware: a bearer access token (or a service's own credential) → user.

For every route not marked public (servicekit's `PUBLIC_ENDPOINT_OPT`) and not under the
public paths (``/schema``, ``/health``, ``/metrics``), the request must carry exactly one
credential:

- ``Authorization: Bearer <access JWT>``: verified with `AccessTokenVerifier`; when the
  service supplies ``load_user``, the user is then read fresh, so a deactivated user or a
  session version that moved on (password changed, logged out everywhere) is refused at once;
- a header of one of the service's `CredentialScheme`\\ s (the gateway's ``X-API-Key``),
  whose callback returns the user or None.

The `AuthUser` lands on ``request.user``; ``request.auth`` holds the token's claims, or
the scheme's name for other credentials. Failures raise `AuthError` (401, or 403
``account_inactive``), answered by servicekit's error handler.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.identity import AuthUser, user_from_claims
from authkit.tokens import AccessTokenClaims, AccessTokenVerifier

__all__ = [
    "DEFAULT_PUBLIC_PATHS",
    "AuthConfig",
    "AuthMiddleware",
    "CredentialScheme",
    "UserLoader",
    "auth_middleware",
]

UserLoader = Callable[[uuid.UUID], Awaitable[AuthUser | None]]
"""Reads a user by id (from the database or a short cache); None when the user is gone."""

DEFAULT_PUBLIC_PATHS: Final = ("^/schema(/|$)", "^/health(/|$)", "^/metrics$")
_BEARER_PREFIX: Final = "bearer "


@dataclass(frozen=True)
class CredentialScheme:
    """A credential other than a bearer token, read from one header (e.g. ``X-API-Key``)."""

    name: str
    header: str
    authenticate: Callable[[str], Awaitable[AuthUser | None]]
    """Returns the key's user, or None for an unknown, expired or revoked credential."""


@dataclass(frozen=True)
class AuthConfig:
    """What the middleware checks tokens with, and the service's hooks."""

    verifier: AccessTokenVerifier
    load_user: UserLoader | None = None
    credential_schemes: Sequence[CredentialScheme] = ()
    public_paths: Sequence[str] = DEFAULT_PUBLIC_PATHS


def auth_middleware(config: AuthConfig) -> DefineMiddleware:
    """The middleware entry for ``Litestar(middleware=[...])``."""
    return DefineMiddleware(AuthMiddleware, config=config)


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticates every non-public request; see the module docstring."""

    def __init__(self, app: ASGIApp, config: AuthConfig) -> None:
        super().__init__(app, exclude=list(config.public_paths) or None)
        self.config = config

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Return the request's user and its credential, or raise `AuthError`."""
        headers = connection.headers
        bearer = headers.getall("authorization", [])
        presented = [
            (scheme, value)
            for scheme in self.config.credential_schemes
            for value in headers.getall(scheme.header, [])
        ]
        if len(bearer) + len(presented) > 1:
            # Two credentials might name two users: refuse rather than pick one.
            raise AuthError(AuthErrorCode.INVALID_CREDENTIALS, "Send exactly one credential.")
        if bearer:
            claims = self.config.verifier.verify(_bearer_token(bearer[0]))
            return AuthenticationResult(user=await self._user_for(claims), auth=claims)
        if presented:
            scheme, value = presented[0]
            user = await scheme.authenticate(value)
            if user is None:
                raise AuthError(AuthErrorCode.INVALID_CREDENTIALS, "The credential is not valid.")
            return AuthenticationResult(user=_active(user), auth=scheme.name)
        raise AuthError(AuthErrorCode.NOT_AUTHENTICATED)

    async def _user_for(self, claims: AccessTokenClaims) -> AuthUser:
        if self.config.load_user is None:
            return user_from_claims(claims)
        user = await self.config.load_user(claims.sub)
        if user is None or user.id != claims.sub:
            raise AuthError(AuthErrorCode.TOKEN_INVALID)
        # Deactivation usually bumps the version too; the clearer reason is reported first.
        _active(user)
        if user.session_version != claims.pv:
            raise AuthError(AuthErrorCode.TOKEN_INVALID, "The session has ended; log in again.")
        return user


def _bearer_token(authorization: str) -> str:
    if authorization[: len(_BEARER_PREFIX)].lower() != _BEARER_PREFIX:
        raise AuthError(AuthErrorCode.TOKEN_INVALID, "Expected a bearer token.")
    token = authorization[len(_BEARER_PREFIX) :].strip()
    if not token or " " in token:
        raise AuthError(AuthErrorCode.TOKEN_INVALID, "Expected a bearer token.")
    return token


def _active(user: AuthUser) -> AuthUser:
    if not user.active:
        raise AuthError(AuthErrorCode.ACCOUNT_INACTIVE)
    return user

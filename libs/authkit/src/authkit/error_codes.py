"""The stable error codes of authentication, each with its one HTTP status.

Every failure authkit reports is an `AuthError`, a `servicekit.errors.ApiError`, so
servicekit's exception handler answers it in the shared shape. Messages are fixed texts:
they never carry a password, a token, a key or a hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

from servicekit.error_codes import ErrorCode
from servicekit.errors import ApiError

__all__ = [
    "AuthError",
    "AuthErrorCode",
    "status_for",
    "too_many_login_attempts",
    "weak_password",
]


class AuthErrorCode(StrEnum):
    """Codes for the ``error.code`` field of authentication failures."""

    # (S105: these are error codes that merely name tokens and passwords, not secrets.)

    INVALID_CREDENTIALS = "invalid_credentials"
    NOT_AUTHENTICATED = ErrorCode.NOT_AUTHENTICATED.value
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    TOKEN_INVALID = "token_invalid"  # noqa: S105
    REFRESH_TOKEN_REUSED = "refresh_token_reused"  # noqa: S105
    ACCOUNT_INACTIVE = "account_inactive"
    FORBIDDEN = ErrorCode.FORBIDDEN.value
    PASSWORD_CHANGE_REQUIRED = "password_change_required"  # noqa: S105
    WEAK_PASSWORD = "weak_password"  # noqa: S105
    TOO_MANY_LOGIN_ATTEMPTS = "too_many_login_attempts"
    # servicekit's code for 503, so a client sees one code for "a dependency is down".
    SERVICE_UNAVAILABLE = ErrorCode.SERVICE_UNAVAILABLE.value


_RULES: Final[Mapping[AuthErrorCode, tuple[int, str]]] = {
    AuthErrorCode.INVALID_CREDENTIALS: (401, "The username or password is wrong."),
    AuthErrorCode.NOT_AUTHENTICATED: (401, "Authentication is required."),
    AuthErrorCode.TOKEN_EXPIRED: (401, "The token has expired."),
    AuthErrorCode.TOKEN_INVALID: (401, "The token is not valid."),
    AuthErrorCode.REFRESH_TOKEN_REUSED: (
        401,
        "The refresh token was already used; every session of its login has been ended.",
    ),
    AuthErrorCode.ACCOUNT_INACTIVE: (403, "The account is deactivated."),
    AuthErrorCode.FORBIDDEN: (403, "You are not allowed to do this."),
    AuthErrorCode.PASSWORD_CHANGE_REQUIRED: (
        403,
        "The password must be changed before anything else.",
    ),
    AuthErrorCode.WEAK_PASSWORD: (400, "The new password does not meet the password policy."),
    AuthErrorCode.TOO_MANY_LOGIN_ATTEMPTS: (429, "Too many login attempts; try again later."),
    AuthErrorCode.SERVICE_UNAVAILABLE: (503, "Login is unavailable; try again later."),
}

# RFC 6750: a 401 names the scheme; a rejected bearer token says why in `error`.
_BEARER_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}
_INVALID_TOKEN_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_CHALLENGES: Final[Mapping[AuthErrorCode, Mapping[str, str]]] = {
    AuthErrorCode.INVALID_CREDENTIALS: _BEARER_CHALLENGE,
    AuthErrorCode.NOT_AUTHENTICATED: _BEARER_CHALLENGE,
    AuthErrorCode.TOKEN_EXPIRED: _INVALID_TOKEN_CHALLENGE,
    AuthErrorCode.TOKEN_INVALID: _INVALID_TOKEN_CHALLENGE,
    AuthErrorCode.REFRESH_TOKEN_REUSED: _INVALID_TOKEN_CHALLENGE,
}


def status_for(code: AuthErrorCode) -> int:
    """Return the HTTP status every error with ``code`` answers with."""
    return _RULES[code][0]


class AuthError(ApiError):
    """An authentication or authorisation failure with a stable code and its fixed status."""

    def __init__(
        self,
        code: AuthErrorCode,
        message: str | None = None,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        status, default_message = _RULES[code]
        merged_headers = {**_CHALLENGES.get(code, {}), **(headers or {})}
        super().__init__(status, code, message or default_message, details, headers=merged_headers)


def too_many_login_attempts(retry_after_s: int) -> AuthError:
    """The 429 for a login refused by the limiter, with ``Retry-After``."""
    seconds = max(1, retry_after_s)
    return AuthError(
        AuthErrorCode.TOO_MANY_LOGIN_ATTEMPTS,
        details={"retry_after_s": seconds},
        headers={"Retry-After": str(seconds)},
    )


def weak_password(problems: Sequence[str]) -> AuthError:
    """The 400 for a new password the policy refuses; details name each problem."""
    return AuthError(AuthErrorCode.WEAK_PASSWORD, details={"problems": list(problems)})

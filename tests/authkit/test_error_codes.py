"""Authentication errors: one status per code, the shared error shape, RFC 6750 challenges."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from authkit.error_codes import (
    AuthError,
    AuthErrorCode,
    status_for,
    too_many_login_attempts,
    weak_password,
)
from servicekit.error_codes import ErrorCode
from servicekit.errors import ApiError
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin


def test_every_code_has_a_status_and_a_message() -> None:
    for code in AuthErrorCode:
        error = AuthError(code)
        assert error.status_code == status_for(code)
        assert error.code == code
        assert error.message


def test_statuses_follow_the_design() -> None:
    assert status_for(AuthErrorCode.INVALID_CREDENTIALS) == 401
    assert status_for(AuthErrorCode.TOKEN_EXPIRED) == 401
    assert status_for(AuthErrorCode.TOKEN_INVALID) == 401
    assert status_for(AuthErrorCode.REFRESH_TOKEN_REUSED) == 401
    assert status_for(AuthErrorCode.FORBIDDEN) == 403
    assert status_for(AuthErrorCode.ACCOUNT_INACTIVE) == 403
    assert status_for(AuthErrorCode.PASSWORD_CHANGE_REQUIRED) == 403
    assert status_for(AuthErrorCode.WEAK_PASSWORD) == 400
    assert status_for(AuthErrorCode.TOO_MANY_LOGIN_ATTEMPTS) == 429
    assert status_for(AuthErrorCode.SERVICE_UNAVAILABLE) == 503


def test_codes_shared_with_servicekit_are_the_same_strings() -> None:
    assert AuthErrorCode.NOT_AUTHENTICATED.value == ErrorCode.NOT_AUTHENTICATED.value
    assert AuthErrorCode.FORBIDDEN.value == ErrorCode.FORBIDDEN.value
    assert AuthErrorCode.SERVICE_UNAVAILABLE.value == ErrorCode.SERVICE_UNAVAILABLE.value


def test_auth_errors_are_api_errors() -> None:
    assert isinstance(AuthError(AuthErrorCode.FORBIDDEN), ApiError)


def test_a_rejected_bearer_token_carries_an_invalid_token_challenge() -> None:
    assert AuthError(AuthErrorCode.TOKEN_EXPIRED).headers == {
        "WWW-Authenticate": 'Bearer error="invalid_token"'
    }
    assert AuthError(AuthErrorCode.NOT_AUTHENTICATED).headers == {"WWW-Authenticate": "Bearer"}
    assert AuthError(AuthErrorCode.FORBIDDEN).headers == {}


def test_too_many_login_attempts_says_when_to_retry() -> None:
    error = too_many_login_attempts(42)
    assert error.status_code == 429
    assert error.headers["Retry-After"] == "42"
    assert error.details == {"retry_after_s": 42}
    assert too_many_login_attempts(0).headers["Retry-After"] == "1"


def test_weak_password_lists_the_problems() -> None:
    error = weak_password(["too_short", "too_common"])
    assert error.status_code == 400
    assert error.details == {"problems": ["too_short", "too_common"]}


@get("/fail")
async def fail() -> None:
    raise AuthError(AuthErrorCode.TOKEN_EXPIRED)


async def test_an_auth_error_is_answered_in_the_shared_shape() -> None:
    app = Litestar([fail], plugins=[ServiceKitPlugin(ServiceKitConfig(service="test"))])
    async with AsyncTestClient(app) as client:
        response = await client.get("/fail")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {
        "error": {"code": "token_expired", "message": "The token has expired.", "details": None}
    }

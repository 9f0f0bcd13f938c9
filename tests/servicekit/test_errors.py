from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
    TooManyRequestsException,
)
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.testing import AsyncTestClient

from servicekit.errors import ApiError, exception_handlers, validation_error
from tests.servicekit.log_capture import LogCapture


class Signup(msgspec.Struct):
    username: str
    password: str
    age: int


@post("/signup")
async def signup(data: JSONBody[Signup]) -> dict[str, str]:
    return {"username": data.username}


@get("/items/{item_id:int}")
async def read_item(item_id: FromPath[int], limit: FromQuery[int] = 10) -> dict[str, int]:
    return {"id": item_id, "limit": limit}


@get("/api-error")
async def raise_api_error() -> None:
    raise ApiError(
        409,
        "request_not_cancellable",
        "Already exported.",
        {"status": "exported"},
        headers={"X-Hint": "retry-later"},
    )


@get("/not-authenticated")
async def raise_not_authenticated() -> None:
    raise NotAuthorizedException("No credentials")


@get("/forbidden")
async def raise_forbidden() -> None:
    raise PermissionDeniedException("Admins only")


@get("/missing")
async def raise_not_found() -> None:
    raise NotFoundException("No such request")


@get("/limited")
async def raise_rate_limited() -> None:
    raise TooManyRequestsException("Slow down", headers={"Retry-After": "7"})


@get("/gone")
async def raise_gone() -> None:
    raise HTTPException(status_code=410, detail="Expired")


@get("/unavailable")
async def raise_unavailable() -> None:
    raise ServiceUnavailableException("redis at redis://:hunter2@cache is down")


@get("/crash")
async def crash() -> None:
    raise RuntimeError("cannot connect to postgresql://gateway:hunter2@db/gateway")


@get("/recurse")
async def recurse() -> None:
    raise RecursionError("maximum recursion depth exceeded")


@post("/validate-payload")
async def validate_payload(data: JSONBody[dict[str, object]]) -> None:
    class Payload(msgspec.Struct):
        limit: int

    try:
        msgspec.convert(data, Payload)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


app = Litestar(
    [
        signup,
        read_item,
        raise_api_error,
        raise_not_authenticated,
        raise_forbidden,
        raise_not_found,
        raise_rate_limited,
        raise_gone,
        raise_unavailable,
        crash,
        validate_payload,
        recurse,
    ],
    exception_handlers=exception_handlers(),
    logging_config=None,
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


async def test_api_errors_keep_their_status_code_details_and_headers(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/api-error")

    assert response.status_code == 409
    assert response.headers["x-hint"] == "retry-later"
    assert response.json() == {
        "error": {
            "code": "request_not_cancellable",
            "message": "Already exported.",
            "details": {"status": "exported"},
        }
    }


async def test_invalid_bodies_are_400_validation_errors_naming_the_field(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.post(
        "/signup", json={"username": "bob", "password": "hunter2", "age": "old"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "The request is not valid.",
        "details": [{"field": "age", "source": "body", "message": "Expected `int`, got `str`"}],
    }
    assert "hunter2" not in response.text


async def test_missing_body_fields_are_named(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/signup", json={"username": "bob", "age": 3})

    [detail] = response.json()["error"]["details"]
    assert detail["message"] == "Object missing required field `password`"


async def test_invalid_query_parameters_are_validation_errors_too(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/items/1", params={"limit": "many", "token": "abc123secret"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {"field": "limit", "source": "query", "message": "Expected `int`, got `str`"}
    ]
    assert "abc123secret" not in response.text


async def test_malformed_json_is_a_bad_request(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/signup", content=b'{"password": "hunter2"', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "hunter2" not in response.text


@pytest.mark.parametrize(
    ("path", "status", "code", "message"),
    [
        ("/not-authenticated", 401, "not_authenticated", "No credentials"),
        ("/forbidden", 403, "forbidden", "Admins only"),
        ("/missing", 404, "not_found", "No such request"),
        ("/no-such-route", 404, "not_found", "Not Found"),
        ("/gone", 410, "gone", "Expired"),
        ("/unavailable", 503, "service_unavailable", "Service Unavailable"),
    ],
)
async def test_http_exceptions_map_to_stable_codes(
    client: AsyncTestClient[Litestar], path: str, status: int, code: str, message: str
) -> None:
    response = await client.get(path)

    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": message, "details": None}}


async def test_wrong_methods_are_405(client: AsyncTestClient[Litestar]) -> None:
    response = await client.delete("/items/1")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_rate_limited_answers_keep_retry_after(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/limited")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limited"


async def test_unexpected_exceptions_are_500_without_their_text_and_logged_redacted(
    client: AsyncTestClient[Litestar], log_capture: LogCapture
) -> None:
    response = await client.get("/crash")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "RuntimeError" not in response.text
    assert "postgresql" not in response.text
    [logged] = log_capture.events("unhandled_exception")
    assert logged["route"] == "/crash"
    assert logged["request_id"] == error["details"]["request_id"]
    assert "RuntimeError: cannot connect to postgresql://gateway:***@db/gateway" in str(
        logged["exception"]
    )
    assert "hunter2" not in log_capture.text


async def test_server_error_exceptions_are_logged_without_secrets(
    client: AsyncTestClient[Litestar], log_capture: LogCapture
) -> None:
    await client.get("/unavailable")

    [logged] = log_capture.events("http_exception")
    assert logged["status"] == 503
    assert "hunter2" not in log_capture.text


async def test_services_turn_their_own_msgspec_failures_into_validation_errors(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.post("/validate-payload", json={"limit": "ten"})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"field": "limit", "source": "body", "message": "Expected `int`, got `str`"}
    ]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"username": "\xff\xfe", "password": "x", "age": 1}', id="invalid-utf-8"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="nested-10000-deep"),
    ],
)
async def test_a_body_the_decoder_cannot_read_is_a_400_not_a_500(
    client: AsyncTestClient[Litestar], body: bytes
) -> None:
    response = await client.post(
        "/signup", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"


async def test_a_recursion_error_of_our_own_code_stays_a_500(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/recurse")

    assert response.status_code == 500

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import structlog
from litestar import Litestar, MediaType, Response, get, post
from litestar.params import FromPath, RawBody
from litestar.testing import AsyncTestClient
from litestar.types import Message, ReceiveMessage

from servicekit.errors import exception_handlers
from servicekit.middleware import (
    PUBLIC_ENDPOINT_OPT,
    BodyLimitMiddleware,
    RequestContextMiddleware,
    ResponseFinisher,
)
from tests.servicekit.log_capture import LogCapture

MAX_BODY_BYTES = 64


@get("/items/{item_id:int}")
async def read_item(item_id: FromPath[int]) -> dict[str, int]:
    structlog.get_logger("test.handler").info("reading_item", item_id=item_id)
    return {"id": item_id}


@post("/echo")
async def echo(body: RawBody) -> bytes:
    return body


@get("/cached")
async def cached() -> Response[dict[str, str]]:
    return Response({"ok": "yes"}, headers={"Cache-Control": "max-age=60"})


@get("/page", media_type=MediaType.HTML)
async def page() -> str:
    return "<html><body>docs</body></html>"


@get("/probe", opt=dict(PUBLIC_ENDPOINT_OPT))
async def probe() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(
    [read_item, echo, cached, page, probe],
    middleware=[RequestContextMiddleware(), BodyLimitMiddleware(MAX_BODY_BYTES)],
    before_send=[ResponseFinisher()],
    exception_handlers=exception_handlers(),
    logging_config=None,
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


async def test_a_request_id_is_generated_and_echoed(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/items/1")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_a_sane_incoming_request_id_is_kept(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": "edge-7f3a.1:2"})
    assert response.headers["x-request-id"] == "edge-7f3a.1:2"


@pytest.mark.parametrize("incoming", ["x" * 129, "has space", "semi;colon", "quote'd", "a/b"])
async def test_an_unsafe_incoming_request_id_is_replaced(
    client: AsyncTestClient[Litestar], incoming: str
) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": incoming})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_lines_logged_by_the_handler_carry_the_request_id(
    client: AsyncTestClient[Litestar], log_capture: LogCapture
) -> None:
    response = await client.get("/items/5", headers={"X-Request-ID": "req-5"})

    [line] = log_capture.events("reading_item")
    assert line["request_id"] == "req-5"
    assert response.headers["x-request-id"] == "req-5"


async def test_one_access_line_per_request_with_route_template_status_and_duration(
    client: AsyncTestClient[Litestar], log_capture: LogCapture
) -> None:
    await client.get(
        "/items/5?token=abc123secret",
        headers={"X-Request-ID": "req-9", "Authorization": "Bearer abcdefgh12345678"},
    )

    [line] = log_capture.events("request")
    assert line["method"] == "GET"
    assert line["route"] == "/items/{item_id}"
    assert line["status"] == 200
    assert line["request_id"] == "req-9"
    assert isinstance(line["duration_ms"], float)
    assert "abc123secret" not in log_capture.text
    assert "abcdefgh12345678" not in log_capture.text


async def test_unmatched_requests_are_logged_and_answered_with_a_request_id(
    client: AsyncTestClient[Litestar], log_capture: LogCapture
) -> None:
    response = await client.get("/nowhere?q=1")

    assert response.status_code == 404
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    [line] = log_capture.events("request")
    assert line["route"] is None
    assert line["path"] == "/nowhere"
    assert line["status"] == 404


async def test_operational_endpoints_stay_out_of_the_access_log(
    client: AsyncTestClient[Litestar], log_capture: LogCapture
) -> None:
    await client.get("/probe")
    assert log_capture.events("request") == []


async def test_json_answers_carry_the_security_headers(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/items/1")

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_a_handlers_own_cache_control_is_kept(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/cached")
    assert response.headers["cache-control"] == "max-age=60"


async def test_html_pages_without_a_policy_of_their_own_get_the_strict_one(
    client: AsyncTestClient[Litestar],
) -> None:
    # Only the API docs page needs more, and it brings its own (tests/servicekit/test_openapi.py).
    response = await client.get("/page")

    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-frame-options"] == "DENY"


async def test_bodies_within_the_limit_pass(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/echo", content=b"x" * MAX_BODY_BYTES)
    assert response.status_code == 201
    assert response.content == b"x" * MAX_BODY_BYTES


async def test_a_declared_body_over_the_limit_is_413(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/echo", content=b"x" * (MAX_BODY_BYTES + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_a_streamed_body_over_the_limit_is_413() -> None:
    # Straight ASGI: the test client would buffer the body into one message.
    chunks = [b"x" * 32] * 4
    sent: list[Message] = []

    async def receive() -> ReceiveMessage:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 413
    assert chunks == [b"x" * 32]  # it stopped reading once over the limit

"""`response-processor serve` under clients that withhold or abandon their request body."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.response_processor.live import ADMIN_PASSWORD, LiveProcessor, serve_processor
from tests.servicekit.raw_http import abandon_body, idle_bodies

MAX_CONNECTIONS = 8
LOGIN = "/api/v1/auth/login"


@pytest.fixture
def live(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[LiveProcessor]:
    with serve_processor(
        tmp_path,
        database_url,
        redis_url,
        PROCESSOR_BODY_TIMEOUT_S="2",
        PROCESSOR_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    ) as live:
        yield live


async def _answered(client: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> int:
    """The first status other than the connection limit's 503, within 20 s."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
        if response.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            return response.status_code
        await asyncio.sleep(0.2)


async def test_idle_body_connections_beyond_the_limit_leave_health_and_login_answering(
    live: LiveProcessor,
) -> None:
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    async with idle_bodies(live.url, LOGIN, 2 * MAX_CONNECTIONS) as readers:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            health = await _answered(client, "GET", "/health/live")
            logged_in = await _answered(client, "POST", LOGIN, json=login)
        # Every silent connection is answered and closed: none is held for long.
        answers = await asyncio.wait_for(
            asyncio.gather(*(reader.read() for reader in readers)), timeout=30
        )
    assert health == 200
    assert logged_in == 200
    # uvicorn answers 503 beyond the limit; within it, the body timeout answers 408.
    assert all(answer.startswith((b"HTTP/1.1 408", b"HTTP/1.1 503")) for answer in answers)


async def test_a_body_that_does_not_arrive_in_time_is_answered_408(live: LiveProcessor) -> None:
    started = time.monotonic()
    async with idle_bodies(live.url, LOGIN, 1) as readers:
        answer = await asyncio.wait_for(readers[0].read(), timeout=30)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"code":"request_timeout"' in answer
    assert time.monotonic() - started < 10


async def test_a_body_between_litestars_default_and_the_limit_reaches_validation(
    live: LiveProcessor,
) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        big = b'{"username": "' + b"a" * 12_000_000 + b'"}'
        too_big = b"x" * (16 * 1024 * 1024 + 1)
        json_type = {"content-type": "application/json"}
        validated = await client.post(LOGIN, content=big, headers=json_type)
        refused = await client.post(LOGIN, content=too_big)
    assert validated.status_code == 400
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"


async def test_a_client_leaving_mid_body_is_counted_as_499_in_one_line(
    live: LiveProcessor,
) -> None:
    await abandon_body(live.url, LOGIN)
    async with httpx.AsyncClient(base_url=live.ops_url, timeout=30) as client:
        await asyncio.sleep(0.5)
        metrics = (await client.get("/metrics")).text
    requests = [line for line in metrics.splitlines() if line.startswith("http_requests_total{")]
    assert any('status_code="499"' in line and LOGIN in line for line in requests), requests
    assert not any('status_code="500"' in line for line in requests), requests
    lines = [line for line in live.log.read_text().splitlines() if LOGIN in line]
    assert len(lines) == 1
    assert '"status":499' in lines[0]
    assert "Traceback" not in live.log.read_text()

"""`request-gateway serve` with two worker processes, and the CLI as operators run it."""

from __future__ import annotations

import asyncio
import collections
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from request_gateway.settings import DEV_JWT_SECRET
from servicekit.testing import MakeDatabase
from tests.request_gateway.conftest import profile_type
from tests.request_gateway.live import (
    CLI,
    LiveGateway,
    Member,
    gateway_environment,
    labelled,
    live_gateway,
    per_process,
    samples,
)
from tests.servicekit.raw_http import abandon_body, idle_bodies

SUBMITS = 60
SUBMIT_PATH = "/api/v1/requests"
BURST = 20
ATTEMPTS = 5


@pytest.fixture(scope="module")
def live(
    postgres_module_database: MakeDatabase,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveGateway]:
    data_dir = tmp_path_factory.mktemp("live-gateway")
    yield from live_gateway(postgres_module_database, redis_server_url, data_dir)


def many_connections() -> httpx.AsyncClient:
    """A client that opens a connection per concurrent request, so both workers get some."""
    limits = httpx.Limits(max_connections=SUBMITS, max_keepalive_connections=SUBMITS)
    return httpx.AsyncClient(limits=limits, timeout=30)


async def served(live: LiveGateway, **labels: str) -> dict[int, float]:
    """Requests matching `labels` that each server process has counted so far.

    Read from the processes' own metrics files: the counts of one process, not their sum.
    """
    metrics = live.settings.data_dir / "metrics"
    return await asyncio.to_thread(per_process, metrics, "http_requests_total", **labels)


async def settled(
    live: LiveGateway, before: dict[int, float], expected: int, **labels: str
) -> dict[int, float]:
    """Each process's count since `before`, once they add up to `expected`.

    The counter is incremented just after the response went out: the last ones may lag.
    """
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        now = await served(live, **labels)
        since = {pid: count - before.get(pid, 0) for pid, count in now.items()}
        if sum(since.values()) >= expected or asyncio.get_running_loop().time() > deadline:
            return since
        await asyncio.sleep(0.05)


async def submit_burst(live: LiveGateway, member: Member) -> list[httpx.Response]:
    async with many_connections() as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{live.url}{SUBMIT_PATH}",
                    json={"type": "echo", "payload": {"n": n}},
                    headers=member.headers,
                )
                for n in range(SUBMITS)
            )
        )


def both(by_process: dict[int, float]) -> bool:
    """Whether each of the two server processes answered some."""
    return len(by_process) == 2 and all(count > 0 for count in by_process.values())


async def test_rate_limits_are_exact_across_two_server_processes(live: LiveGateway) -> None:
    trickle = profile_type("trickle", rpm=1, burst=BURST)
    submits = {"method": "POST", "path": SUBMIT_PATH}
    # Which process accepts a connection is up to the kernel and a busy process may take
    # none: burst again, as a new user with a fresh limit, until both have answered some.
    for _ in range(ATTEMPTS):
        member = await live.member(profile=trickle)
        before = await served(live, **submits)
        answers = await submit_burst(live, member)
        statuses = collections.Counter(answer.status_code for answer in answers)
        assert statuses == {202: BURST, 429: SUBMITS - BURST}, statuses
        for answer in answers:
            policy = answer.headers["RateLimit-Policy"]
            assert policy == f'"burst";q={BURST};w=1200', answer.headers
            assert answer.headers["RateLimit"].startswith('"burst";r=')
            if answer.status_code == 429:
                assert answer.json()["error"]["code"] == "rate_limited"
                assert int(answer.headers["Retry-After"]) > 0
        by_process = await settled(live, before, SUBMITS, **submits)
        if both(by_process):
            return
    pytest.fail(f"one process answered every burst: {by_process}")


async def test_metrics_sum_the_requests_of_both_workers(live: LiveGateway) -> None:
    member = await live.member()
    listed = {"method": "GET", "path": SUBMIT_PATH, "status_code": "200"}
    before = await served(live, **listed)
    async with many_connections() as client:
        for rounds in range(1, ATTEMPTS + 1):  # until both processes have answered some
            answers = await asyncio.gather(
                *(
                    client.get(f"{live.url}{SUBMIT_PATH}", headers=member.headers)
                    for _ in range(SUBMITS)
                )
            )
            assert {answer.status_code for answer in answers} == {200}
            by_process = await settled(live, before, rounds * SUBMITS, **listed)
            if both(by_process):
                break
        page = samples((await client.get(f"{live.ops_url}/metrics")).text)
    assert both(by_process), by_process
    assert sum(by_process.values()) == rounds * SUBMITS
    assert labelled(page, "http_requests_total", **listed) == sum(
        (await served(live, **listed)).values()
    )
    assert labelled(page, "gateway_identity_cache_lookups_total") > 0


async def test_health_reports_every_dependency_within_its_budget(live: LiveGateway) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{live.ops_url}/health")
    assert response.status_code == 200, response.text
    report = response.json()
    assert set(report["checks"]) >= {"database", "redis", "outbox", "inbox"}
    # A check still running when the 100 ms budget ends is reported failed, never awaited.
    assert report["status"] == "ok", report


def run_cli(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    environment = gateway_environment(GATEWAY_DATA_DIR=str(tmp_path / "data"), **settings)
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


def test_migrate_prepares_an_empty_database(
    tmp_path: Path, postgres_database: MakeDatabase, redis_server_url: str
) -> None:
    database_url = postgres_database()
    result = run_cli(
        tmp_path,
        "migrate",
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_REDIS_URL=redis_server_url,
    )
    assert result.returncode == 0, result.stderr

    async def tables() -> set[str]:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        finally:
            await connection.close()
        return {row["tablename"] for row in rows}

    assert {"request", "user_quota"} <= asyncio.run(tables())


def test_a_bad_setting_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "migrate", GATEWAY_PORT="abc")
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid settings")
    assert "GATEWAY_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_default_secrets_without_printing_any(tmp_path: Path) -> None:
    redis_password = "redis-password-never-printed"
    result = run_cli(
        tmp_path,
        "serve",
        GATEWAY_ENV="production",
        GATEWAY_REDIS_URL=f"redis://:{redis_password}@redis.internal:6379/0",
    )
    assert result.returncode == 2
    assert "GATEWAY_JWT_SECRET" in result.stderr
    assert "GATEWAY_DATABASE_URL" in result.stderr
    output = result.stderr + result.stdout
    assert DEV_JWT_SECRET not in output
    assert redis_password not in output


async def test_idle_body_connections_beyond_the_limit_leave_health_and_login_answering(
    live: LiveGateway,
) -> None:
    # More silent bodies than both workers together take in at once (backpressure).
    held = 2 * live.settings.max_connections + 16
    async with idle_bodies(live.url, "/api/v1/auth/login", held) as readers:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            health = await client.get("/health/live")
        member = await live.member()
        # Each silent body was answered 408 with our error body once its timeout passed.
        first = await asyncio.wait_for(readers[0].read(4096), timeout=30)
    assert health.status_code == 200
    assert member.access_token
    assert first.startswith(b"HTTP/1.1 408")
    assert b'"code":"request_timeout"' in first


async def test_a_client_leaving_mid_body_is_counted_as_499_not_500(live: LiveGateway) -> None:
    # A route of its own: the idle-body test's connections, closed early, are 499s too.
    path = "/api/v1/auth/refresh"
    labels = {"path": path, "method": "POST"}
    before = await served(live, **labels, status_code="499")
    await abandon_body(live.url, path)
    since = await settled(live, before, 1, **labels, status_code="499")
    assert sum(since.values()) == 1
    assert sum((await served(live, **labels, status_code="500")).values()) == 0
    lines = [line for line in live.log.read_text().splitlines() if path in line]
    assert len(lines) == 1
    assert '"status":499' in lines[0]
    assert "Traceback" not in live.log.read_text()

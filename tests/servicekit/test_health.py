from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio

from servicekit.health import (
    HealthCheck,
    folder_check,
    postgres_check,
    redis_check,
    run_health_checks,
)
from servicekit.testing import MakeDatabase


async def _ok() -> str | None:
    return "fine"


async def _broken() -> str | None:
    raise ConnectionError("cannot reach postgresql://gateway:s3cr3t@db/gateway")


async def _hanging() -> str | None:
    await asyncio.sleep(30)
    return None


async def _ignores_cancellation() -> str | None:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # keeps working after being told to stop
    return None


async def test_all_checks_passing_is_ok_with_200() -> None:
    report = await run_health_checks([HealthCheck("a", _ok), HealthCheck("b", _ok)])

    assert report.status == "ok"
    assert report.http_status == 200
    assert report.checks["a"].status == "ok"
    assert report.checks["a"].detail == "fine"
    assert report.checks["a"].duration_ms >= 0


async def test_a_critical_failure_fails_with_503_without_leaking_the_url_password() -> None:
    report = await run_health_checks([HealthCheck("database", _broken), HealthCheck("b", _ok)])

    assert report.status == "fail"
    assert report.http_status == 503
    detail = report.checks["database"].detail
    assert detail == "ConnectionError: cannot reach postgresql://gateway:***@db/gateway"


async def test_only_non_critical_failures_are_degraded_with_200() -> None:
    report = await run_health_checks(
        [HealthCheck("peer_link", _broken, critical=False), HealthCheck("database", _ok)]
    )

    assert report.status == "degraded"
    assert report.http_status == 200


async def test_health_answers_within_budget_when_a_check_hangs() -> None:
    started = time.perf_counter()
    report = await run_health_checks(
        [HealthCheck("stuck", _hanging, timeout_s=5), HealthCheck("quick", _ok)], budget_s=0.1
    )
    elapsed = time.perf_counter() - started

    assert elapsed < 0.15
    assert report.checks["stuck"].status == "fail"
    assert report.checks["quick"].status == "ok"


async def test_health_answers_within_budget_when_a_check_ignores_cancellation() -> None:
    started = time.perf_counter()
    report = await run_health_checks(
        [HealthCheck("stubborn", _ignores_cancellation, timeout_s=5)], budget_s=0.05
    )
    elapsed = time.perf_counter() - started

    assert elapsed < 0.1
    assert report.checks["stubborn"].detail == "no answer within the health budget"
    await asyncio.sleep(0.25)  # let the stubborn check finish before the loop closes


async def test_each_check_is_bounded_by_its_own_timeout() -> None:
    report = await run_health_checks([HealthCheck("slow", _hanging, timeout_s=0.02)], budget_s=1)

    assert report.checks["slow"].detail == "timed out after 20 ms"
    assert report.checks["slow"].duration_ms < 100


async def test_no_checks_is_ok() -> None:
    report = await run_health_checks([])
    assert report.status == "ok"
    assert report.checks == {}


@pytest.fixture
async def pool(postgres_database: MakeDatabase) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with asyncpg.create_pool(postgres_database(), min_size=1, max_size=2) as created:
        yield created


async def test_postgres_check_passes_against_a_live_server(pool: asyncpg.Pool[Any]) -> None:
    report = await run_health_checks([postgres_check(pool)])
    assert report.checks["database"].status == "ok"


async def test_postgres_check_fails_when_the_server_is_unreachable(tmp_path: Path) -> None:
    url = f"postgresql://postgres@/postgres?host={tmp_path}"
    async with asyncpg.create_pool(url, min_size=0, max_size=1) as unreachable:
        report = await run_health_checks([postgres_check(unreachable)])
    assert report.status == "fail"
    assert report.checks["database"].status == "fail"


async def test_redis_check_passes_against_a_live_server(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        report = await run_health_checks([redis_check(client)])
    finally:
        await client.aclose()
    assert report.checks["redis"].status == "ok"


async def test_redis_check_fails_when_the_server_is_unreachable(
    unreachable_redis: redis.asyncio.Redis,
) -> None:
    report = await run_health_checks([redis_check(unreachable_redis)])
    assert report.checks["redis"].status == "fail"


async def test_folder_check_reports_free_space_of_a_writable_folder(tmp_path: Path) -> None:
    report = await run_health_checks([folder_check(tmp_path, min_free_bytes=1, name="outbox")])

    assert report.checks["outbox"].status == "ok"
    assert str(report.checks["outbox"].detail).endswith("bytes free")
    assert os.listdir(tmp_path) == []  # the probe file is gone again


async def test_folder_check_fails_below_the_free_space_minimum(tmp_path: Path) -> None:
    check = folder_check(tmp_path, min_free_bytes=2**62, name="outbox")
    report = await run_health_checks([check])
    assert "below the minimum" in str(report.checks["outbox"].detail)


@pytest.mark.parametrize("kind", ["missing", "file"])
async def test_folder_check_fails_for_something_that_is_not_a_folder(
    tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "inbox"
    if kind == "file":
        target.write_text("not a folder")
    report = await run_health_checks([folder_check(target, min_free_bytes=1)])
    assert report.checks["folder:inbox"].status == "fail"


async def test_concurrent_probes_share_one_run_and_a_fresh_report_is_reused() -> None:
    from servicekit.health import SharedReport

    runs = 0

    async def slow_check() -> str | None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.02)
        return None

    checks = [HealthCheck("slow", slow_check)]
    shared = SharedReport(max_age_s=60)
    reports = await asyncio.gather(*(shared.get(checks, 0.1) for _ in range(10)))
    assert runs == 1
    assert all(report.status == "ok" for report in reports)
    await shared.get(checks, 0.1)
    assert runs == 1
    assert (await SharedReport(max_age_s=0).get(checks, 0.1)).status == "ok"
    assert runs == 2

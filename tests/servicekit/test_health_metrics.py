"""/metrics runs the health checks before it renders: a process that answers but is
unhealthy shows ``health_status`` 0, and each folder check's free space is a gauge."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from servicekit.health import HealthCheck, folder_check
from servicekit.server import operational_app


async def _database_down() -> str | None:
    raise ConnectionError("database unreachable")


async def _redis_down() -> str | None:
    raise ConnectionError("redis unreachable")


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_a_failing_critical_check_shows_as_health_status_zero_at_each_scrape(
    tmp_path: Path,
) -> None:
    checks = [
        HealthCheck("database", _database_down),
        folder_check(tmp_path, min_free_bytes=0, name="scrape-test-outbox"),
    ]
    async with AsyncTestClient(operational_app("test-service", lambda: checks)) as client:
        # No /health request first: the scrape alone runs the checks.
        metrics = (await client.get("/metrics")).text
    assert _samples(metrics, "health_status") == {(): 0.0}
    free = _samples(metrics, "folder_free_bytes")
    assert free[(("folder", "scrape-test-outbox"),)] > 0


async def test_only_non_critical_failures_show_as_degraded() -> None:
    checks = [HealthCheck("redis", _redis_down, critical=False)]
    async with AsyncTestClient(operational_app("test-service", lambda: checks)) as client:
        metrics = (await client.get("/metrics")).text
        health = await client.get("/health")
    assert _samples(metrics, "health_status") == {(): 0.5}
    assert health.status_code == 200


async def test_a_healthy_process_shows_one() -> None:
    async with AsyncTestClient(operational_app("test-service", list)) as client:
        metrics = (await client.get("/metrics")).text
    assert _samples(metrics, "health_status") == {(): 1.0}

"""Health checks that answer within a fixed budget, even when a dependency hangs.

A check is an async callable: it returns an optional detail on success and raises on
failure. `run_health_checks` runs all checks at once, each bounded by its own timeout and
all of them by the budget; a check still running when the budget ends counts as failed and
is cancelled, never awaited. The overall status is ``ok``, ``degraded`` (only non-critical
checks failed; HTTP 200) or ``fail`` (a critical check failed; HTTP 503).

Every run also sets ``health_status`` (1 ok, 0.5 degraded, 0 fail) and each folder check's
``folder_free_bytes{folder}``; ``/metrics`` runs the checks (through the same shared report
as ``/health``) before it renders, so Prometheus sees a process that answers but is
unhealthy, and the free space of every folder a service writes, at each scrape.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from servicekit.metrics import register_local_collector
from servicekit.middleware import PUBLIC_ENDPOINT_OPT
from servicekit.redaction import scrub_text

if TYPE_CHECKING:  # only for annotations: processes without a database skip the imports
    import asyncpg
    import redis.asyncio

__all__ = [
    "CheckResult",
    "HealthCheck",
    "HealthChecksProvider",
    "HealthReport",
    "SharedReport",
    "folder_check",
    "health_handlers",
    "live_handler",
    "postgres_check",
    "probe_folder",
    "redis_check",
    "report_handler",
    "run_health_checks",
]

CheckStatus = Literal["ok", "fail"]
OverallStatus = Literal["ok", "degraded", "fail"]

DEFAULT_CHECK_TIMEOUT_S = 0.08
DEFAULT_BUDGET_S = 0.1
DEFAULT_REPORT_MAX_AGE_S = 1.0


class _HealthMetrics(Collector):
    """``health_status`` and ``folder_free_bytes``, as this process's checks last found them
    (a local collector: see `servicekit.metrics.register_local_collector`)."""

    def __init__(self) -> None:
        self.status: float | None = None
        self.free_bytes: dict[str, int] = {}

    def collect(self) -> list[GaugeMetricFamily]:
        """The samples of the checks run so far (none before the first run)."""
        families = []
        if self.status is not None:
            status = GaugeMetricFamily(
                "health_status",
                "The last /health verdict of this process: 1 ok, 0.5 degraded, 0 fail (503).",
            )
            status.add_metric([], self.status)
            families.append(status)
        if self.free_bytes:
            families.append(folder_free_bytes(self.free_bytes))
        return families


def folder_free_bytes(free: Mapping[str, int]) -> GaugeMetricFamily:
    """``folder_free_bytes{folder}``: the bytes free by folder name (the disk-space alert's
    input, from health checks and from the scheduled backup)."""
    family = GaugeMetricFamily(
        "folder_free_bytes",
        "Bytes free for the service on the file system of a folder it writes or watches, by "
        "name (a health check's, or the backup's: backups, database).",
        labels=["folder"],
    )
    for name, value in sorted(free.items()):
        family.add_metric([name], value)
    return family


def free_bytes(path: Path) -> int:
    """Bytes free for an unprivileged writer on the file system of `path` (blocking)."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


HEALTH_METRICS = _HealthMetrics()
register_local_collector(HEALTH_METRICS)
_STATUS_VALUE = {"ok": 1.0, "degraded": 0.5, "fail": 0.0}


@dataclass(frozen=True)
class HealthCheck:
    """A named dependency check; ``critical`` ones failing make the service unhealthy (503)."""

    name: str
    check: Callable[[], Awaitable[str | None]]
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    critical: bool = True


class CheckResult(msgspec.Struct, frozen=True):
    """The outcome of one check, as reported by ``GET /health``."""

    status: CheckStatus
    detail: str | None
    duration_ms: float
    critical: bool


class HealthReport(msgspec.Struct, frozen=True):
    """All checks' outcomes and the overall verdict."""

    status: OverallStatus
    checks: dict[str, CheckResult]

    @property
    def http_status(self) -> int:
        """503 when a critical check failed, else 200."""
        return 503 if self.status == "fail" else 200


HealthChecksProvider = Callable[[Litestar], Sequence[HealthCheck]]
"""Builds the checks from the app at request time, when its pools and clients exist."""


async def run_health_checks(
    checks: Sequence[HealthCheck], budget_s: float = DEFAULT_BUDGET_S
) -> HealthReport:
    """Run every check concurrently and report within ``budget_s`` seconds."""
    started = time.perf_counter()
    tasks = {asyncio.create_task(_run_one(check, budget_s)): check for check in checks}
    done: set[asyncio.Task[CheckResult]] = set()
    if tasks:
        done, _ = await asyncio.wait(tasks, timeout=budget_s)
    results: dict[str, CheckResult] = {}
    for task, check in tasks.items():
        if task in done:
            results[check.name] = task.result()
        else:
            # A check that ignores cancellation must not hold the answer back: cancel it and
            # move on without awaiting it.
            task.cancel()
            elapsed_ms = (time.perf_counter() - started) * 1000
            results[check.name] = _failed(check, "no answer within the health budget", elapsed_ms)
    status = _overall(checks, results)
    HEALTH_METRICS.status = _STATUS_VALUE[status]
    return HealthReport(status=status, checks=results)


async def _run_one(check: HealthCheck, budget_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(min(check.timeout_s, budget_s)):
            detail = await check.check()
    except TimeoutError:
        elapsed_ms = (time.perf_counter() - started) * 1000
        return _failed(check, f"timed out after {check.timeout_s * 1000:.0f} ms", elapsed_ms)
    except Exception as exc:
        elapsed_ms = (time.perf_counter() - started) * 1000
        return _failed(check, scrub_text(f"{type(exc).__name__}: {exc}"), elapsed_ms)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return CheckResult("ok", detail, round(elapsed_ms, 2), check.critical)


def _failed(check: HealthCheck, detail: str, elapsed_ms: float) -> CheckResult:
    return CheckResult("fail", detail, round(elapsed_ms, 2), check.critical)


def _overall(checks: Sequence[HealthCheck], results: dict[str, CheckResult]) -> OverallStatus:
    failed = [check for check in checks if results[check.name].status == "fail"]
    if any(check.critical for check in failed):
        return "fail"
    return "degraded" if failed else "ok"


def postgres_check(
    pool: asyncpg.Pool[Any],
    *,
    name: str = "database",
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    critical: bool = True,
) -> HealthCheck:
    """Check that PostgreSQL answers ``SELECT 1`` through the service's pool."""

    async def check() -> str | None:
        await pool.fetchval("SELECT 1", timeout=timeout_s)
        return None

    return HealthCheck(name, check, timeout_s, critical)


def redis_check(
    client: redis.asyncio.Redis,
    *,
    name: str = "redis",
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    critical: bool = True,
) -> HealthCheck:
    """Check that Redis answers ``PING``."""

    async def check() -> str | None:
        await client.ping()
        return None

    return HealthCheck(name, check, timeout_s, critical)


def folder_check(
    path: Path,
    *,
    min_free_bytes: int,
    name: str | None = None,
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    critical: bool = True,
) -> HealthCheck:
    """Check that a folder can be listed and written and has ``min_free_bytes`` free; its free
    space goes to ``folder_free_bytes{folder=name}``."""
    name = name or f"folder:{path.name}"

    async def check() -> str | None:
        # Listing, writing and statvfs can block on a slow or network disk: in a thread.
        free = await asyncio.to_thread(_probe, path)
        HEALTH_METRICS.free_bytes[name] = free
        return _enough(free, min_free_bytes)

    return HealthCheck(name, check, timeout_s, critical)


def probe_folder(path: Path, min_free_bytes: int = 0) -> str:
    """List, write and measure a folder (blocking); OSError says what fails."""
    return _enough(_probe(path), min_free_bytes)


def _enough(free: int, min_free_bytes: int) -> str:
    if free < min_free_bytes:
        raise OSError(f"{free} bytes free, below the minimum of {min_free_bytes}")
    return f"{free} bytes free"


def _probe(path: Path) -> int:
    """List and write a folder and return the bytes free on its file system (blocking)."""
    with os.scandir(path):
        pass
    # A real write, not os.access: access() says yes to root on a read-only mount.
    with tempfile.NamedTemporaryFile(dir=path, prefix=".health-", delete=True) as probe:
        probe.write(b"ok")
        probe.flush()
    return free_bytes(path)


class SharedReport:
    """One run of the checks serves every probe arriving while it runs, and for `max_age_s`.

    Under load a probe per second from several monitors would otherwise run every check
    each time, on workers already busy with requests, and report timeouts the service
    itself is not suffering from.
    """

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._report: HealthReport | None = None
        self._at = 0.0
        self._running: asyncio.Task[HealthReport] | None = None

    async def get(self, checks: Sequence[HealthCheck], budget_s: float) -> HealthReport:
        """The latest report if fresh enough, else the one being made (or a new run)."""
        if self._report is not None and time.monotonic() - self._at < self.max_age_s:
            return self._report
        if self._running is None:
            self._running = asyncio.ensure_future(run_health_checks(checks, budget_s))
            self._running.add_done_callback(self._keep)
        return await asyncio.shield(self._running)

    def _keep(self, task: asyncio.Task[HealthReport]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._report, self._at = task.result(), time.monotonic()


def health_handlers(
    checks: HealthChecksProvider,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    max_age_s: float = DEFAULT_REPORT_MAX_AGE_S,
) -> list[HTTPRouteHandler]:
    """Build ``GET /health`` (the report; 200 or 503) and ``GET /health/live`` (always 200)."""
    return [report_handler(checks, budget_s=budget_s, max_age_s=max_age_s), live_handler()]


def report_handler(
    checks: HealthChecksProvider,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    max_age_s: float = DEFAULT_REPORT_MAX_AGE_S,
    shared: SharedReport | None = None,
) -> HTTPRouteHandler:
    """Build ``GET /health``: every check's outcome, 503 when a critical one fails.

    ``shared`` is the report to share with another reader (``/metrics``); by default its own.
    """
    shared = shared if shared is not None else SharedReport(max_age_s)

    unhealthy = ResponseSpec(
        HealthReport,
        description="A critical check failed: the same report.",
        generate_examples=False,
    )

    @get("/health", opt=dict(PUBLIC_ENDPOINT_OPT), name="health", responses={503: unhealthy})
    async def health(request: Request[Any, Any, Any]) -> Response[HealthReport]:
        """Report each dependency check; 503 when a critical one fails."""
        report = await shared.get(checks(request.app), budget_s)
        return Response(report, status_code=report.http_status)

    return health


def live_handler() -> HTTPRouteHandler:
    """Build ``GET /health/live`` (always 200): all a load balancer asks of a public port."""

    @get("/health/live", opt=dict(PUBLIC_ENDPOINT_OPT), name="health-live")
    async def live() -> dict[str, str]:
        """Answer 200 while the process runs (liveness probe)."""
        return {"status": "ok"}

    return live

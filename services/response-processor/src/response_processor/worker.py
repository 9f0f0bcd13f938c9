"""`response-processor worker`: arq jobs, the link, reconciliation and retention, in one
process."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime, timedelta

import structlog
from arq import Worker
from arq.worker import func
from litestar import Litestar

from airlink import retention as link_retention
from response_processor.domain.snapshot import snapshot_if_due
from response_processor.health import health_checks
from response_processor.processing.handlers.registry import load_registry
from response_processor.processing.jobs import JobResources, JobSettings, process_request
from response_processor.requests.queue import JOB_NAME
from response_processor.requests.reconcile import reconcile
from response_processor.requests.retention import purge_requests
from response_processor.runtime import Runtime, open_runtime, worker_pool_size
from response_processor.settings import ProcessorSettings
from servicekit import retention
from servicekit.server import embedded_server, operational_app, run_every

# arq's own try limit must stay above ours: the job itself decides when to give up (it
# counts tries in PostgreSQL, which survives a Redis loss), arq must never drop it silently.
ARQ_EXTRA_TRIES = 3
POLL_DELAY_S = 0.05
# arq kills a job this long after our own timeout should have: a last resort only. A job
# whose worker died is run again once its in-progress mark expires (timeout + 10 s).
ARQ_TIMEOUT_MARGIN_S = 5
SNAPSHOT_CHECK_S = 60.0

log = structlog.get_logger("response_processor.worker")


def job_settings(settings: ProcessorSettings) -> JobSettings:
    """Timeouts and retries from the settings."""
    return JobSettings(
        default_timeout_s=settings.job_timeout_s,
        timeouts=settings.job_timeouts,
        max_tries=settings.max_tries,
        backoff_s=settings.retry_backoff_s,
    )


def build_worker(runtime: Runtime) -> Worker:
    """The arq worker, on the runtime's Redis pool, with the handlers of this installation."""
    settings = runtime.settings
    handlers = load_registry()
    jobs = job_settings(settings)
    longest = max(
        [jobs.default_timeout_s, *jobs.timeouts.values()]
        + [handler.timeout_s or 0 for handler in handlers.values()]
    )
    resources = JobResources(runtime.pool, handlers, jobs)
    return Worker(
        functions=[
            func(process_request, name=JOB_NAME, max_tries=jobs.max_tries + ARQ_EXTRA_TRIES)
        ],
        redis_pool=runtime.arq,
        handle_signals=False,
        max_jobs=settings.worker_concurrency,
        # Our own per-type timeout fires first; arq's is only the last resort.
        job_timeout=longest + ARQ_TIMEOUT_MARGIN_S,
        keep_result=0,  # a request's job id must be free again once it finished
        poll_delay=POLL_DELAY_S,
        ctx={"resources": resources},
        log_results=False,
    )


async def run_worker(settings: ProcessorSettings) -> None:
    """Run until SIGTERM or SIGINT: jobs, link, reconciliation."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # arq logs two lines per job; the job's own `request_completed` line says what matters,
    # and at hundreds of jobs a second the rest is CPU spent on noise.
    logging.getLogger("arq").setLevel(logging.WARNING)
    async with open_runtime(settings, pool_size=worker_pool_size(settings)) as runtime:
        worker = build_worker(runtime)
        server = embedded_server(worker_app(runtime), settings.host, settings.worker_port)
        log.info(
            "worker_started",
            handlers=sorted(worker.ctx["resources"].handlers),
            listen=f"{settings.host}:{settings.worker_port}",
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                jobs = tasks.create_task(worker.async_run())
                tasks.create_task(server.serve())
                tasks.create_task(runtime.link.run(stop))
                tasks.create_task(_reconcile_loop(runtime, stop))
                tasks.create_task(_snapshot_loop(runtime, stop))
                tasks.create_task(_retention_loop(runtime, stop))
                await stop.wait()
                server.should_exit = True
                jobs.cancel()
        except* asyncio.CancelledError:
            pass
        finally:
            await worker.close()
            log.info("worker_stopped")


def worker_app(runtime: Runtime) -> Litestar:
    """The worker's operational endpoints: /health, /health/live, /metrics."""
    return operational_app("response-processor-worker", lambda: health_checks(runtime))


async def _reconcile_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    async def once() -> None:
        await reconcile(runtime.pool, runtime.arq)

    await run_every(runtime.settings.reconcile_interval_s, once, stop, "reconcile")


async def _snapshot_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    interval = timedelta(seconds=runtime.settings.snapshot_interval_s)

    async def once() -> None:
        if await snapshot_if_due(runtime.pool, interval):
            log.info("users_snapshot_queued")

    await run_every(min(interval.total_seconds(), SNAPSHOT_CHECK_S), once, stop, "snapshot")


async def _retention_loop(runtime: Runtime, stop: asyncio.Event) -> None:
    async def once() -> None:
        await apply_retention(runtime)

    await run_every(runtime.settings.retention_interval_s, once, stop, "retention")


async def apply_retention(runtime: Runtime, now: datetime | None = None) -> None:
    """Purge what outlived PROCESSOR_RETENTION_DAYS: the link's old batches, records and
    archived files, finished requests (with their retried dead letters), stray cancels."""
    older_than = retention.cutoff(now or datetime.now(UTC), runtime.settings.retention_days)
    await link_retention.purge(runtime.pool, runtime.link.settings, older_than)
    purged = await purge_requests(runtime.pool, older_than)
    if any(purged.values()):
        log.info("requests_purged", older_than=older_than.isoformat(), **purged)

"""`request-gateway worker`: the link (export, import, acks), request expiry and retention, in
one process."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from functools import partial
from typing import Final

import structlog

from airlink import retention as link_retention
from request_gateway.domain import requests
from request_gateway.domain.retention import delete_finished_requests
from request_gateway.health import health_checks
from request_gateway.metrics import OLDEST_PENDING_AGE
from request_gateway.runtime import Runtime, open_runtime
from request_gateway.settings import GatewaySettings
from servicekit import retention
from servicekit.database import Connection, Pool
from servicekit.server import embedded_server, operational_app, run_every

EXPIRE_CHUNK: Final = 10_000
# The request_pending_idx partial index has exactly this predicate: one index probe.
OLDEST_PENDING_SQL: Final = (
    f"SELECT min(created_at) FROM request WHERE status IN {requests.PENDING}"  # noqa: S608
)

log = structlog.get_logger("request_gateway.worker")


async def run_worker(settings: GatewaySettings) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with open_runtime(settings, listen=False) as runtime:
        app = operational_app("request-gateway-worker", lambda: health_checks(runtime))
        server = embedded_server(app, settings.host, settings.worker_port)
        log.info("worker_started", listen=f"{settings.host}:{settings.worker_port}")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve())
            tasks.create_task(runtime.link.run(stop))
            tasks.create_task(
                run_every(settings.expiry_interval_s, partial(expire_due, runtime), stop, "expiry")
            )
            tasks.create_task(
                run_every(
                    settings.retention_interval_s,
                    partial(apply_retention, runtime),
                    stop,
                    "retention",
                )
            )
            await stop.wait()
            server.should_exit = True
        log.info("worker_stopped")


async def expire_due(runtime: Runtime) -> None:
    """Expire every pending request older than the TTL, then measure the oldest one left."""
    cutoff = requests.ttl_cutoff(datetime.now(UTC), runtime.settings.request_ttl_hours)
    total = 0
    while True:
        async with runtime.pool.acquire() as conn:
            count = await requests.expire(conn, older_than=cutoff, limit=EXPIRE_CHUNK)
        total += count
        if count < EXPIRE_CHUNK:
            break
    if total:
        log.info("requests_expired", count=total)
    await record_oldest_pending(runtime.pool)


async def record_oldest_pending(pool: Pool) -> float:
    """Set (and return) the age in seconds of the oldest pending request, 0 when none."""
    async with pool.acquire() as conn:
        oldest: datetime | None = await conn.fetchval(OLDEST_PENDING_SQL)
    age = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    OLDEST_PENDING_AGE.set(age)
    return age


async def apply_retention(runtime: Runtime, now: datetime | None = None) -> None:
    """Purge what outlived GATEWAY_RETENTION_DAYS: the link's old batches, records and archived
    files, and finished requests."""
    older_than = retention.cutoff(now or datetime.now(UTC), runtime.settings.retention_days)
    await link_retention.purge(runtime.pool, runtime.link.settings, older_than)

    async def chunk(conn: Connection, limit: int) -> int:
        return await delete_finished_requests(conn, older_than, limit)

    deleted = await retention.purge_in_chunks(runtime.pool, chunk)
    retention.count_purged("requests", deleted)
    if deleted:
        log.info("requests_purged", count=deleted, older_than=older_than.isoformat())

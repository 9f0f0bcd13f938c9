"""Redis is never the source of truth: unfinished requests are put back in the queue."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import structlog
from arq import ArqRedis

from response_processor import metrics
from response_processor.requests.queue import enqueue_requests
from response_processor.requests.status import UNFINISHED_SQL
from servicekit.database import Pool

BATCH: Final = 5_000

UNFINISHED_PAGE_SQL: Final = f"""
    SELECT id FROM request
    WHERE status IN {UNFINISHED_SQL} AND ($1::uuid IS NULL OR id > $1)
    ORDER BY id LIMIT $2
"""  # noqa: S608 - the statuses are our own constants
STATS_SQL: Final = f"""
    SELECT count(*) AS unfinished,
           coalesce(extract(epoch FROM now() - min(received_at)), 0) AS oldest_s
    FROM request WHERE status IN {UNFINISHED_SQL}
"""  # noqa: S608

log = structlog.get_logger("response_processor.reconcile")


async def reconcile(pool: Pool, arq: ArqRedis) -> int:
    """Queue every unfinished request that has no job (after a restart or a Redis loss).

    Job ids are request ids: a request whose job is queued or running is left alone by arq,
    so this is safe to run at any time, from any number of workers.
    """
    started = time.perf_counter()
    queued = 0
    after = None
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(UNFINISHED_PAGE_SQL, after, BATCH)
        if not rows:
            break
        queued += await enqueue_requests(arq, (row["id"] for row in rows))
        after = rows[-1]["id"]
    await refresh_gauges(pool, arq)
    if queued:
        metrics.RECONCILED.inc(queued)
        log.info(
            "requests_reenqueued",
            count=queued,
            duration_ms=round((time.perf_counter() - started) * 1000),
        )
    return queued


@dataclass(frozen=True, slots=True)
class Backlog:
    """Requests received and not yet answered, as the metrics and the console show them."""

    unfinished: int
    oldest_unfinished_s: float
    queue_depth: int


async def read_backlog(pool: Pool, arq: ArqRedis) -> Backlog:
    """The backlog now: unfinished requests, the oldest one's age, jobs waiting in the queue."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(STATS_SQL)
    assert row is not None
    queue_depth = await arq.zcard(arq.default_queue_name)
    return Backlog(row["unfinished"], float(row["oldest_s"]), queue_depth)


async def refresh_gauges(pool: Pool, arq: ArqRedis) -> None:
    """Unfinished count, oldest unfinished age and queue depth, for the metrics."""
    backlog = await read_backlog(pool, arq)
    metrics.UNFINISHED.set(backlog.unfinished)
    metrics.OLDEST_UNFINISHED.set(backlog.oldest_unfinished_s)
    metrics.QUEUE_DEPTH.set(backlog.queue_depth)

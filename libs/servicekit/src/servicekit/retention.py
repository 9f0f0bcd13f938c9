"""What retention jobs share: the cutoff, purging in short transactions, and one counter.

A purge deletes at most `CHUNK_ROWS` rows per transaction and commits between chunks, so it
never holds many row locks for long, and a stopped worker loses at most one chunk's work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from prometheus_client import Counter

from servicekit.database import Connection, Pool

__all__ = ["CHUNK_ROWS", "PURGED", "count_purged", "cutoff", "purge_in_chunks"]

CHUNK_ROWS: Final = 5_000

PURGED = Counter(
    "retention_purged_total",
    "Rows and files deleted by retention, by what: requests, dead_letters, request_cancels, "
    "outbound_batches, outbox_groups, outbox_items, inbound_batches, archived_batch_files.",
    ("what",),
)

Chunk = Callable[[Connection, int], Awaitable[int]]
"""Deletes at most `limit` rows in the caller's transaction; returns how many it deleted."""


def cutoff(now: datetime, retention_days: float) -> datetime:
    """What is older than this has outlived the retention."""
    return now - timedelta(days=retention_days)


def count_purged(what: str, count: int) -> None:
    """Count deletions of one kind (nothing for zero, so idle runs add no samples)."""
    if count:
        PURGED.labels(what).inc(count)


async def purge_in_chunks(pool: Pool, chunk: Chunk, *, limit: int = CHUNK_ROWS) -> int:
    """Run `chunk` in its own transaction until it deletes fewer than `limit`; the total."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            deleted = await chunk(conn, limit)
        total += deleted
        if deleted < limit:
            return total

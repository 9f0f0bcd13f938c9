"""Retention of finished requests: those older than `PROCESSOR_RETENTION_DAYS` are deleted.

A request is finished once completed, failed, cancelled or rejected; its age is when it
finished (or arrived, if it never ran). A request whose dead letter is still open waits for
an operator: it stays until the dead letter is retried. Its retried dead letters and its
cancel record go with it; cancels whose request never came go after the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from response_processor.requests.status import FINAL_SQL
from servicekit import retention
from servicekit.database import Connection, Pool

# request_received_idx walks the oldest requests first; a request finishes after it arrives.
FINISHED_BEFORE_SQL: Final = f"""
    SELECT r.id FROM request AS r
    WHERE r.received_at < $1 AND coalesce(r.finished_at, r.received_at) < $1
      AND r.status IN {FINAL_SQL}
      AND NOT EXISTS (
          SELECT 1 FROM dead_letter AS d WHERE d.request = r.id AND d.retried_at IS NULL)
    ORDER BY r.received_at LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
"""  # noqa: S608
_DELETE_DEAD_LETTERS: Final = "DELETE FROM dead_letter WHERE request = ANY($1::uuid[])"
_DELETE_CANCELS: Final = "DELETE FROM request_cancel WHERE request_id = ANY($1::uuid[])"
_DELETE_REQUESTS: Final = "DELETE FROM request WHERE id = ANY($1::uuid[])"
_DELETE_ORPHAN_CANCELS: Final = """
    DELETE FROM request_cancel WHERE request_id IN (
        SELECT c.request_id FROM request_cancel AS c
        WHERE c.received_at < $1
          AND NOT EXISTS (SELECT 1 FROM request AS r WHERE r.id = c.request_id)
        LIMIT $2
    )
"""


@dataclass(frozen=True, slots=True)
class PurgedRequests:
    """What one chunk deleted."""

    requests: int
    dead_letters: int
    request_cancels: int


async def delete_finished_requests(
    conn: Connection, older_than: datetime, limit: int
) -> PurgedRequests:
    """Delete up to `limit` requests finished before `older_than`, with their retried dead
    letters and cancels; call in a transaction."""
    ids = [row["id"] for row in await conn.fetch(FINISHED_BEFORE_SQL, older_than, limit)]
    if not ids:
        return PurgedRequests(0, 0, 0)
    letters = _count(await conn.execute(_DELETE_DEAD_LETTERS, ids))
    cancels = _count(await conn.execute(_DELETE_CANCELS, ids))
    requests = _count(await conn.execute(_DELETE_REQUESTS, ids))
    return PurgedRequests(requests, letters, cancels)


async def delete_orphan_cancels(conn: Connection, older_than: datetime, limit: int) -> int:
    """Delete up to `limit` cancels received before `older_than` whose request never came."""
    return _count(await conn.execute(_DELETE_ORPHAN_CANCELS, older_than, limit))


async def purge_requests(pool: Pool, older_than: datetime) -> dict[str, int]:
    """Delete, chunk by chunk, what finished before `older_than`; count it in the metrics and
    return the counts by table."""
    purged = {"requests": 0, "dead_letters": 0, "request_cancels": 0}

    async def requests_chunk(conn: Connection, limit: int) -> int:
        chunk = await delete_finished_requests(conn, older_than, limit)
        purged["dead_letters"] += chunk.dead_letters
        purged["request_cancels"] += chunk.request_cancels
        return chunk.requests

    async def cancels_chunk(conn: Connection, limit: int) -> int:
        return await delete_orphan_cancels(conn, older_than, limit)

    purged["requests"] = await retention.purge_in_chunks(pool, requests_chunk)
    purged["request_cancels"] += await retention.purge_in_chunks(pool, cancels_chunk)
    for what, count in purged.items():
        retention.count_purged(what, count)
    return purged


def _count(status: str) -> int:
    """The row count of a `DELETE n` command status."""
    return int(status.rsplit(" ", 1)[-1])

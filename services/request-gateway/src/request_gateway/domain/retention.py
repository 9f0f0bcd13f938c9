"""Retention of finished requests: those older than `GATEWAY_RETENTION_DAYS` are deleted.

A request is finished once completed, failed, cancelled or expired; its age is its last
change (`updated_at`), so a late answer restarts the clock. Deleting one frees its
idempotency key; pending requests are never touched (they expire first, after the TTL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from request_gateway.domain.requests import PENDING, STATUSES
from servicekit.database import Connection

FINISHED: Final = tuple(status for status in STATUSES if status not in PENDING)

# request_created_idx walks the oldest requests first; updated_at is never before created_at.
_DELETE_FINISHED: Final = f"""
    DELETE FROM request WHERE id IN (
        SELECT id FROM request
        WHERE created_at < $1 AND updated_at < $1 AND status IN {FINISHED}
        ORDER BY created_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
"""  # noqa: S608


async def delete_finished_requests(conn: Connection, older_than: datetime, limit: int) -> int:
    """Delete up to `limit` requests finished before `older_than`; return how many."""
    status = await conn.execute(_DELETE_FINISHED, older_than, limit)
    return int(status.rsplit(" ", 1)[-1])

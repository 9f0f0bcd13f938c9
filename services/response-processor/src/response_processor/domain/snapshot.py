"""The periodic full snapshot of users and profile types, which heals any drift at the gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from airlink.outbox import enqueue
from airlink.records import UserSnapshot
from response_processor.domain import audit
from response_processor.domain.profile_types import list_profile_types
from response_processor.domain.users import user_records
from servicekit.database import Pool

SNAPSHOT_LOCK_ID: Final = 0x53_6E_61_70_73_68_6F_74  # "Snapshot"
SNAPSHOT_TASK: Final = "users_snapshot"
"""Its row in `scheduler_state`: when the last snapshot was queued (not the audit log, whose
retention must not change the cadence)."""
LAST_RUN_SQL: Final = "SELECT last_run_at FROM scheduler_state WHERE task = $1"
RAN_SQL: Final = """
    INSERT INTO scheduler_state (task, last_run_at) VALUES ($1, $2)
    ON CONFLICT (task) DO UPDATE SET last_run_at = excluded.last_run_at
"""


async def snapshot_if_due(pool: Pool, interval: timedelta) -> bool:
    """Queue every user and profile type and the snapshot marker, if the last is old enough.

    Any number of workers may call this: one takes the lock, the others skip; the time of
    the last snapshot is in `scheduler_state`, written in the snapshot's transaction.
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SNAPSHOT_LOCK_ID):
            return False
        last = await conn.fetchval(LAST_RUN_SQL, SNAPSHOT_TASK)
        now = datetime.now(UTC)
        if last is not None and now - last < interval:
            return False
        profile_types = await list_profile_types(conn)
        users = await user_records(conn, None)
        marker = UserSnapshot(
            user_ids=[user.id for user in users],
            profile_types=[profile_type.name for profile_type in profile_types],
            taken_at=now,
        )
        await enqueue(conn, [*(p.record() for p in profile_types), *users, marker])
        await conn.execute(RAN_SQL, SNAPSHOT_TASK, now)
        await audit.record(
            conn,
            audit.SYSTEM,
            audit.Action.USERS_SNAPSHOT,
            details={"users": len(users), "profile_types": len(profile_types)},
        )
    return True

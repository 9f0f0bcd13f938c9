"""Retention on the gateway: finished requests and archived batches older than
GATEWAY_RETENTION_DAYS are purged by the worker's job; everything else stays."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from request_gateway.runtime import Runtime
from request_gateway.worker import apply_retention

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=31)  # the default retention is 30 days
RECENT = NOW - timedelta(days=29)


def _purged(what: str) -> float:
    return REGISTRY.get_sample_value("retention_purged_total", {"what": what}) or 0.0


async def _request(
    db: asyncpg.Connection[Any], status: str, created_at: datetime, updated_at: datetime
) -> uuid.UUID:
    request_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at,
                                updated_at)
           VALUES ($1, $2, 'echo', '{}', $3, 't', $4, $5)""",
        request_id,
        uuid.uuid4(),
        status,
        created_at,
        updated_at,
    )
    return request_id


async def test_finished_requests_older_than_the_retention_are_purged(
    link_runtime: Runtime, db: asyncpg.Connection[Any]
) -> None:
    purged = [await _request(db, status, OLD, OLD) for status in ("completed", "failed")]
    purged += [await _request(db, status, OLD, OLD) for status in ("cancelled", "expired")]
    kept = [
        await _request(db, "completed", OLD, RECENT),  # answered late: its age starts then
        await _request(db, "completed", RECENT, RECENT),
        await _request(db, "queued", OLD, OLD),  # pending: expiry's business, never purged
        await _request(db, "delivered", OLD, OLD),
    ]
    before = _purged("requests")

    await apply_retention(link_runtime, now=NOW)

    left = {row["id"] for row in await db.fetch("SELECT id FROM request")}
    assert left == set(kept)
    assert _purged("requests") == before + len(purged)
    await apply_retention(link_runtime, now=NOW)  # nothing more to do
    assert _purged("requests") == before + len(purged)


async def test_the_job_purges_archived_batch_files_too(link_runtime: Runtime) -> None:
    archive = link_runtime.link.settings.archive_dir
    archive.mkdir(parents=True, exist_ok=True)
    old = archive / f"response-net__{1:012d}__{uuid.uuid4()}.jsonl"
    recent = archive / f"response-net__{2:012d}__{uuid.uuid4()}.jsonl"
    for path, when in ((old, OLD), (recent, RECENT)):
        path.write_text("{}\n")
        os.utime(path, (when.timestamp(), when.timestamp()))

    await apply_retention(link_runtime, now=NOW)

    assert sorted(archive.iterdir()) == [recent]

"""Retention on the processor: finished requests (with their retried dead letters and cancels)
older than PROCESSOR_RETENTION_DAYS are purged by the worker's job; open dead letters keep
their request for an operator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from response_processor.runtime import Runtime, open_runtime
from response_processor.settings import ProcessorSettings
from response_processor.worker import apply_retention

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=31)  # the default retention is 30 days
RECENT = NOW - timedelta(days=29)


@pytest.fixture
async def rt(settings: ProcessorSettings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as runtime:
        yield runtime


def _purged(what: str) -> float:
    return REGISTRY.get_sample_value("retention_purged_total", {"what": what}) or 0.0


async def _request(
    db: asyncpg.Connection[Any],
    status: str,
    received_at: datetime,
    finished_at: datetime | None,
    dead_letter_retried: bool | None = None,
) -> uuid.UUID:
    request_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at,
                                received_at, finished_at)
           VALUES ($1, $2, 'echo', '{}', $3, 't', $4, $4, $5)""",
        request_id,
        uuid.uuid4(),
        status,
        received_at,
        finished_at,
    )
    if dead_letter_retried is not None:
        await db.execute(
            """INSERT INTO dead_letter (request, error_code, error_message, attempts,
                                        created_at, retried_at)
               VALUES ($1, 'handler_error', 'boom', 5, $2, $3)""",
            request_id,
            finished_at,
            finished_at if dead_letter_retried else None,
        )
    return request_id


async def _cancel(db: asyncpg.Connection[Any], request_id: uuid.UUID, at: datetime) -> None:
    await db.execute(
        """INSERT INTO request_cancel (request_id, user_id, requested_at, received_at)
           VALUES ($1, $2, $3, $3)""",
        request_id,
        uuid.uuid4(),
        at,
    )


async def test_finished_requests_older_than_the_retention_are_purged(
    rt: Runtime, db: asyncpg.Connection[Any]
) -> None:
    completed = await _request(db, "completed", OLD, OLD)
    purged = [
        completed,
        await _request(db, "failed", OLD, OLD, dead_letter_retried=True),
        await _request(db, "cancelled", OLD, OLD),
        await _request(db, "rejected", OLD, None),
    ]
    kept = [
        await _request(db, "failed", OLD, OLD, dead_letter_retried=False),  # open: an operator's
        await _request(db, "completed", OLD, RECENT),  # finished within the retention
        await _request(db, "received", OLD, None),  # unfinished
        await _request(db, "processing", OLD, None),
    ]
    await _cancel(db, completed, OLD)
    stray_old, stray_recent = uuid.uuid4(), uuid.uuid4()  # cancels whose request never came
    await _cancel(db, stray_old, OLD)
    await _cancel(db, stray_recent, RECENT)
    before = {what: _purged(what) for what in ("requests", "dead_letters", "request_cancels")}

    await apply_retention(rt, now=NOW)

    assert {row["id"] for row in await db.fetch("SELECT id FROM request")} == set(kept)
    assert await db.fetchval("SELECT count(*) FROM dead_letter") == 1  # the open one
    cancels = {row["request_id"] for row in await db.fetch("SELECT * FROM request_cancel")}
    assert cancels == {stray_recent}
    assert _purged("requests") == before["requests"] + len(purged)
    assert _purged("dead_letters") == before["dead_letters"] + 1
    assert _purged("request_cancels") == before["request_cancels"] + 2

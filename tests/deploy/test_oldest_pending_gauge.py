"""The gateway worker's `gateway_oldest_pending_request_age_seconds`, behind the alert on
requests left unanswered (deploy/prometheus/rules/airlock.rules.yml)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import REGISTRY

from request_gateway.db.piccolo_app import APPS
from request_gateway.worker import record_oldest_pending
from servicekit.database import Pool
from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase


async def _gateway_database(postgres_database: MakeDatabase) -> str:
    async def setup(url: str) -> None:
        await migrate(url, APPS)

    return postgres_database(setup, key="request-gateway")


async def _add_request(pool: Pool, status: str, age: timedelta) -> None:
    created = datetime.now(UTC) - age
    await pool.execute(
        """INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at,
                                updated_at)
           VALUES ($1, $2, 'echo', '{}', $3, 'trace', $4, $4)""",
        uuid.uuid4(), uuid.uuid4(), status, created,
    )  # fmt: skip


def _gauge_value() -> float | None:
    return REGISTRY.get_sample_value("gateway_oldest_pending_request_age_seconds")


async def test_the_gauge_is_the_age_of_the_oldest_pending_request(
    postgres_database: MakeDatabase,
) -> None:
    url = await _gateway_database(postgres_database)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        assert await record_oldest_pending(pool) == 0.0
        assert _gauge_value() == 0.0
        await _add_request(pool, "completed", timedelta(hours=5))
        await _add_request(pool, "expired", timedelta(hours=30))
        await _add_request(pool, "delivered", timedelta(hours=2))
        await _add_request(pool, "queued", timedelta(minutes=3))
        age = await record_oldest_pending(pool)
    finally:
        await pool.close()
    assert 2 * 3600 <= age < 2 * 3600 + 60
    assert _gauge_value() == age

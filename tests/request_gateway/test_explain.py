"""The gateway's hot queries use an index on a request table of production-like size
(100,000 rows, 1,000 users, a few pending): the plans PostgreSQL picks, not forced ones."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from request_gateway.db.piccolo_app import APPS
from request_gateway.domain import requests
from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase, explain

ROWS = 100_000
USER = uuid.UUID(bytes=bytes.fromhex("c4ca4238a0b923820dcc509a6f75849b"))  # md5('1')
FILL = """
INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at, updated_at,
                     change_seq, idempotency_key)
SELECT gen_random_uuid(), md5((n % 1000)::text)::uuid, 'lookup',
       jsonb_build_object('n', n),
       CASE WHEN n % 100 = 0 THEN 'queued' WHEN n % 100 = 1 THEN 'exported' ELSE 'completed' END,
       md5(n::text), now() - make_interval(secs => n), now(), n / 1000,
       CASE WHEN n % 2 = 0 THEN 'key-' || n END
FROM generate_series(1, $1) AS n
"""
NOW = datetime.now(UTC)
RESPONSES = json.dumps([{"request_id": str(uuid.uuid4()), "status": "completed"}])
QUERIES: list[tuple[str, str, tuple[Any, ...]]] = [
    ("get", requests.GET_SQL, (uuid.uuid4(), USER)),
    ("replay", requests.REPLAY_SQL, (USER, "key-2", "lookup", "{}")),
    ("changes", requests.CHANGES_SQL, (USER, 50, 100)),
    ("list of a user", requests.LIST_SQL, (USER, None, None, None, 50)),
    ("list of all", requests.LIST_SQL, (None, None, NOW, uuid.uuid4(), 50)),
    ("stage", requests.STAGE_SQL, (1000,)),
    ("delivered", requests.DELIVERED_SQL, ([uuid.uuid4()],)),
    ("apply responses", requests.APPLY_RESPONSES_SQL, (RESPONSES,)),
    ("expire", requests.EXPIRE_SQL, (NOW - timedelta(days=1), 1000)),
    ("cancel queued", requests.CANCEL_QUEUED_SQL, (uuid.uuid4(), USER)),
]


async def _migrated_and_filled(url: str) -> None:
    await migrate(url, APPS)
    connection = await asyncpg.connect(url)
    try:
        # The per-user change trigger would bump one row per insert: a bulk fill skips it.
        await connection.execute("SET session_replication_role = replica")
        await connection.execute(FILL, ROWS)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


@pytest.fixture
def filled(postgres_database: MakeDatabase) -> str:
    """A clone of one template filled once for the whole module."""
    return postgres_database(_migrated_and_filled, key="request-gateway-explain")


@pytest.mark.parametrize(("name", "query", "args"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_each_hot_query_reads_the_request_table_by_an_index(
    filled: str, name: str, query: str, args: tuple[Any, ...]
) -> None:
    connection = await asyncpg.connect(filled)
    try:
        plan = await explain(connection, query, *args)
    finally:
        await connection.close()
    assert "Seq Scan on request" not in plan, f"{name}:\n{plan}"
    assert "Index" in plan, f"{name}:\n{plan}"

"""The processor's hot queries use an index on tables of production-like size (100,000
requests from 1,000 users, some unfinished, some dead letters; 100,000 cancels and audit
rows): the plans PostgreSQL picks, not forced ones."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from response_processor.db.piccolo_app import APPS
from response_processor.domain import audit
from response_processor.requests import inbound, lifecycle, reads, reconcile, retention
from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase, explain

ROWS = 100_000
USER = uuid.UUID(bytes=bytes.fromhex("c4ca4238a0b923820dcc509a6f75849b"))  # md5('1')
# Each 1,000 requests share one received_at, as the requests of one imported batch do.
FILL = """
INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at, received_at,
                     finished_at)
SELECT md5('r' || n)::uuid, md5((n % 1000)::text)::uuid, 'lookup', jsonb_build_object('n', n),
       CASE WHEN n % 100 = 0 THEN 'received' WHEN n % 100 = 1 THEN 'failed'
            ELSE 'completed' END,
       md5(n::text), now() - make_interval(secs => n),
       now() - make_interval(mins => n / 1000),
       CASE WHEN n % 100 <> 0 THEN now() - make_interval(mins => n / 1000) END
FROM generate_series(1, $1) AS n;
INSERT INTO dead_letter (request, error_code, error_message, attempts, retried_at)
SELECT id, 'handler_error', 'gave up', 5, CASE WHEN random() < 0.5 THEN now() END
FROM request WHERE status = 'failed';
INSERT INTO request_cancel (request_id, user_id, requested_at)
SELECT md5('c' || n)::uuid, md5((n % 1000)::text)::uuid, now()
FROM generate_series(1, $1) AS n;
INSERT INTO audit_log (at, actor, action, target, details)
SELECT now() - make_interval(secs => n), 'user' || (n % 1000),
       CASE WHEN n % 10 = 0 THEN 'login_failed' ELSE 'login' END, 'user:user' || (n % 1000),
       '{}'
FROM generate_series(1, $1) AS n;
"""
NOW = datetime.now(UTC)
IDS = [uuid.uuid4() for _ in range(100)]
USERS = [USER] * len(IDS)
QUERIES: list[tuple[str, str, tuple[Any, ...]]] = [
    ("get", reads.GET_SQL, (uuid.uuid4(),)),
    ("list of all", reads.LIST_SQL, (None, None, NOW, uuid.uuid4(), 50)),
    ("list of a user", reads.LIST_SQL, (None, USER, None, None, 50)),
    ("list by status", reads.LIST_SQL, ("received", None, None, None, 50)),
    ("dead letters", reads.DEAD_LETTERS_SQL, (True, None, 50)),
    ("dead letter", reads.DEAD_LETTER_SQL, (1,)),
    ("load a job's request", lifecycle.LOAD_SQL, (uuid.uuid4(),)),
    ("start", lifecycle.START_SQL, (uuid.uuid4(), "processing")),
    ("finish", lifecycle.FINISH_SQL, (uuid.uuid4(), "completed", "{}", None, None, NOW)),
    ("reconcile page", reconcile.UNFINISHED_PAGE_SQL, (None, 5000)),
    ("backlog gauges", reconcile.STATS_SQL, ()),
    ("retention", retention.FINISHED_BEFORE_SQL, (NOW - timedelta(days=30), 1000)),
    ("earlier cancels", inbound.EARLIER_CANCELS_SQL, (IDS,)),
    ("mark cancelled", inbound.MARK_CANCELLED_SQL, (IDS, USERS, "received")),
    ("audit page", audit.LIST_SQL, (None, None, None, None, None, 50)),
    ("audit of an action", audit.LIST_SQL, ("login_failed", None, None, None, None, 50)),
    ("audit of a time range", audit.LIST_SQL, (None, None, None, NOW - timedelta(hours=2),
                                               NOW - timedelta(hours=1), 50)),
]  # fmt: skip
TABLES = ("request", "dead_letter", "audit_log", "request_cancel")


async def _migrated_and_filled(url: str) -> None:
    await migrate(url, APPS)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SET session_replication_role = replica")  # audit_log's trigger
        for statement in FILL.split(";\n"):
            if statement.strip():
                await connection.execute(statement.replace("$1", str(ROWS)))
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


@pytest.fixture
def filled(postgres_database: MakeDatabase) -> str:
    """A clone of one template filled once for the whole module."""
    return postgres_database(_migrated_and_filled, key="response-processor-explain")


@pytest.mark.parametrize(("name", "query", "args"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_each_hot_query_reads_its_tables_by_an_index(
    filled: str, name: str, query: str, args: tuple[Any, ...]
) -> None:
    connection = await asyncpg.connect(filled)
    try:
        plan = await explain(connection, query, *args)
    finally:
        await connection.close()
    for table in TABLES:
        assert not re.search(rf"Seq Scan on {table}\b", plan), f"{name}:\n{plan}"
    assert "Index" in plan, f"{name}:\n{plan}"

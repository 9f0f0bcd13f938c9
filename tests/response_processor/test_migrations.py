"""The processor's migrations run forwards on a database that already holds data."""

from __future__ import annotations

import uuid

import asyncpg

from response_processor.domain.bootstrap import APPS
from servicekit.migrations import migrate, migrate_to
from servicekit.testing import MakeDatabase

FIRST = "2026-11-27T20:55:00:000000"  # the tables, before the hand-written migration


async def test_later_migrations_apply_to_a_database_holding_data(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate_to(url, APPS, "processor", FIRST)
    document_id, request_id = uuid.uuid4(), uuid.uuid4()
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """INSERT INTO profile_type (name, requests_per_minute, burst,
                   allowed_request_types, max_payload_bytes, max_pending_requests)
               VALUES ('old', 5, 5, '{echo}', 100, 5)"""
        )
        await connection.execute(
            "INSERT INTO document (id, title, body) VALUES ($1, 'Annual report', 'revenue')",
            document_id,
        )
        await connection.execute(
            """INSERT INTO request (id, user_id, type, payload, trace_id, created_at)
               VALUES ($1, $2, 'echo', '{}', 't', now())""",
            request_id,
            uuid.uuid4(),
        )
        await migrate(url, APPS)  # the rest: search vectors, indexes, checks, triggers
        found = await connection.fetchval(
            "SELECT id FROM document WHERE search @@ websearch_to_tsquery('english', 'reports')"
        )
        assert found == document_id  # existing rows got their search vector
        assert await connection.fetchval(
            "SELECT status FROM request WHERE id = $1", request_id
        ) == ("received")
    finally:
        await connection.close()

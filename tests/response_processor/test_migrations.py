"""The processor's migrations run forwards on a database that already holds data, and back to
the previous migration and forwards again without losing a row."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from response_processor.db.piccolo_app import APPS
from servicekit.migrations import migrate, migrate_back_to, migrate_to, ran_migrations
from servicekit.testing import MakeDatabase, table_contents
from tests.release_queries import check_release, load_release, service

FIRST = "2026-11-27T20:55:00:000000"  # the tables, before the hand-written migration
SECOND = "2026-11-27T21:00:00:000000"  # search vectors, indexes, checks, append-only audit
THIRD = "2026-12-02T16:00:00:000000"  # scheduler state


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


async def test_the_hand_written_migration_goes_back_and_forth_keeping_every_row(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate(url, APPS)
    connection = await asyncpg.connect(url)
    try:
        await _fill(connection)
        before = await table_contents(connection)

        await migrate_back_to(url, APPS, "processor", FIRST)
        assert await ran_migrations(connection, "processor") == [FIRST]
        assert await connection.fetchval("SELECT to_regclass('document_search_idx')") is None
        back = await table_contents(connection)
        # Only the derived column went, and the scheduler state (the audit log rebuilds it).
        expected = _without(before, "document", "search")
        assert expected.pop("scheduler_state") == []
        assert back == expected
        # The audit log is no longer append-only: the trigger went with the migration.
        await connection.execute("UPDATE audit_log SET outcome = outcome")

        await migrate(url, APPS)
        assert await ran_migrations(connection, "processor") == [FIRST, SECOND, THIRD]
        assert await table_contents(connection) == before
        rain = "SELECT count(*) FROM document WHERE search @@ to_tsquery('english', 'rain')"
        assert await connection.fetchval(rain) == 1
    finally:
        await connection.close()


async def _fill(connection: asyncpg.Connection[Any]) -> None:
    """A profile type, a user, requests (one dead-lettered), documents, an audit entry."""
    user_id, failed_id = uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        """INSERT INTO profile_type (name, requests_per_minute, burst, allowed_request_types,
               max_payload_bytes, max_pending_requests) VALUES ('standard', 60, 20, '{echo}',
               4096, 10)"""
    )
    await connection.execute(
        """INSERT INTO app_user (id, username, password_hash, roles, profile_type)
           VALUES ($1, 'Alice', 'hash', '{user}', 'standard')""",
        user_id,
    )
    await connection.execute(
        """INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at)
           VALUES ($1, $2, 'echo', '{"n": 1}', 'completed', 't1', now()),
                  ($3, $2, 'echo', '{"n": 2}', 'failed', 't2', now())""",
        uuid.uuid4(),
        user_id,
        failed_id,
    )
    await connection.execute(
        """INSERT INTO dead_letter (request, error_code, error_message, attempts)
           VALUES ($1, 'handler_error', 'boom', 5)""",
        failed_id,
    )
    await connection.execute(
        """INSERT INTO document (id, title, body) VALUES ($1, 'Weather', 'rain tomorrow'),
               ($2, 'Budget', 'numbers')""",
        uuid.uuid4(),
        uuid.uuid4(),
    )
    await connection.execute("INSERT INTO audit_log (action, actor) VALUES ('login', 'Alice')")


def _without(
    contents: dict[str, list[dict[str, object]]], table: str, column: str
) -> dict[str, list[dict[str, object]]]:
    trimmed = dict(contents)
    trimmed[table] = [
        {key: value for key, value in row.items() if key != column} for row in contents[table]
    ]
    return trimmed


async def test_the_scheduler_state_starts_from_the_last_snapshot_the_audit_log_holds(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate_to(url, APPS, "processor", SECOND)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """INSERT INTO audit_log (action, actor, at) VALUES
                   ('users_snapshot', 'system', '2026-12-01T10:00:00Z'),
                   ('users_snapshot', 'system', '2026-12-01T11:00:00Z')"""
        )
        await migrate(url, APPS)
        rows = await connection.fetch("SELECT task, last_run_at FROM scheduler_state")
        assert [(row["task"], row["last_run_at"].isoformat()) for row in rows] == [
            ("users_snapshot", "2026-12-01T11:00:00+00:00")
        ]
    finally:
        await connection.close()


async def test_the_previous_release_queries_run_after_every_later_migration(
    postgres_database: MakeDatabase,
) -> None:
    # Expand/contract (docs/operations.md): a rolling upgrade runs the previous release's
    # code on the new schema, so no later migration may break a statement it ships.
    chosen = service("processor")
    release = load_release(chosen.file)
    report = await check_release(postgres_database(), chosen.apps, release)
    assert report.at_release == {}, "the release file does not match its own schema"
    broken = {step: failures for step, failures in report.after.items() if failures}
    assert broken == {}, f"migrations that break release {release.version}'s statements"

"""The gateway's migrations run forwards on a database that already holds data, and back to
the previous migration and forwards again without losing a row."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from request_gateway.db.piccolo_app import APPS
from servicekit.migrations import migrate, migrate_back_to, migrate_to, ran_migrations
from servicekit.testing import MakeDatabase, table_contents
from tests.release_queries import (
    check_release,
    load_release,
    migrate_to_release,
    prepare_failures,
    service,
)
from tests.request_gateway.sample_data import fill
from tests.request_gateway.test_backup import run

FIRST = "2026-12-01T23:00:00:000000"  # the tables
SECOND = "2026-12-01T23:10:00:000000"  # indexes, checks, submit function, triggers
THIRD = "2026-12-02T15:40:00:000000"  # the request change numbers and their notification


async def test_later_migrations_apply_to_a_database_holding_data(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate_to(url, APPS, "gateway", FIRST)
    user_id = uuid.uuid4()
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """INSERT INTO request (id, user_id, type, payload, trace_id)
               VALUES ($1, $2, 'echo', '{}', 't'), ($3, $2, 'echo', '{}', 't')""",
            uuid.uuid4(),
            user_id,
            uuid.uuid4(),
        )
        await connection.execute(
            "INSERT INTO user_quota (user_id, pending) VALUES ($1, 2)", user_id
        )
        await migrate(url, APPS)
        # The quota trigger now releases a slot when a pending request finishes.
        await connection.execute("UPDATE request SET status = 'completed'")
        assert (
            await connection.fetchval("SELECT pending FROM user_quota WHERE user_id = $1", user_id)
            == 0
        )
    finally:
        await connection.close()


async def test_the_hand_written_migration_goes_back_and_forth_keeping_every_row(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate(url, APPS)
    connection = await asyncpg.connect(url)
    try:
        await fill(connection)
        before = await table_contents(connection)

        await migrate_back_to(url, APPS, "gateway", FIRST)
        assert await ran_migrations(connection, "gateway") == [FIRST]
        assert await connection.fetchval("SELECT to_regproc('submit_request')") is None
        assert await table_contents(connection) == before

        await migrate(url, APPS)
        assert await ran_migrations(connection, "gateway") == [FIRST, SECOND, THIRD]
        assert await table_contents(connection) == before
        # The submit function is back, and the quota it keeps still counts the old requests.
        assert await connection.fetchval("SELECT to_regproc('submit_request')") is not None
        pending = await connection.fetchval(
            "SELECT count(*) FROM request WHERE status IN ('queued', 'exported', 'delivered')"
        )
        assert await connection.fetchval("SELECT sum(pending) FROM user_quota") == pending
    finally:
        await connection.close()


async def test_change_numbers_survive_going_back_and_continue_forwards(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate(url, APPS)
    connection = await asyncpg.connect(url)
    user_id, request_id = uuid.uuid4(), uuid.uuid4()
    try:
        await connection.execute(
            """INSERT INTO request (id, user_id, type, payload, trace_id)
               VALUES ($1, $2, 'echo', '{}', 't')""",
            request_id,
            user_id,
        )
        await migrate_back_to(url, APPS, "gateway", SECOND)
        await connection.execute("UPDATE request SET status = 'exported'")  # not numbered
        await migrate(url, APPS)
        await connection.execute("UPDATE request SET status = 'delivered'")
        numbers = await connection.fetchrow(
            "SELECT r.change_seq AS request, q.change_seq AS user_seq"
            " FROM request r JOIN user_quota q USING (user_id) WHERE r.id = $1",
            request_id,
        )
        assert numbers is not None
        assert (numbers["request"], numbers["user_seq"]) == (2, 2)
    finally:
        await connection.close()


async def test_the_cli_rolls_back_only_when_confirmed(tmp_path: Path, database_url: str) -> None:
    unconfirmed = run(tmp_path, database_url, "migrate", "--back-to", FIRST)
    assert unconfirmed.returncode == 2
    assert "--yes" in unconfirmed.stderr
    rolled_back = run(tmp_path, database_url, "migrate", "--back-to", FIRST, "--yes")
    assert rolled_back.returncode == 0, rolled_back.stderr
    connection = await asyncpg.connect(database_url)
    try:
        assert await ran_migrations(connection, "gateway") == [FIRST]
        assert await ran_migrations(connection, "authkit") != []  # other apps untouched
    finally:
        await connection.close()
    unknown = run(tmp_path, database_url, "migrate", "--back-to", "no-such-id", "--yes")
    assert unknown.returncode == 1
    assert FIRST in unknown.stderr


async def test_the_previous_release_queries_run_after_every_later_migration(
    postgres_database: MakeDatabase,
) -> None:
    # Expand/contract (docs/operations.md): a rolling upgrade runs the previous release's
    # code on the new schema, so no later migration may break a statement it ships.
    chosen = service("gateway")
    release = load_release(chosen.file)
    report = await check_release(postgres_database(), chosen.apps, release)
    assert report.at_release == {}, "the release file does not match its own schema"
    broken = {step: failures for step, failures in report.after.items() if failures}
    assert broken == {}, f"migrations that break release {release.version}'s statements"


async def test_the_release_check_names_what_a_contracting_change_breaks(
    postgres_database: MakeDatabase,
) -> None:
    chosen = service("gateway")
    release = load_release(chosen.file)
    url = postgres_database()
    await migrate_to_release(url, chosen.apps, release)
    connection = await asyncpg.connect(url)
    try:
        # Expanding (a new nullable column, a new table) leaves every statement working...
        await connection.execute("ALTER TABLE request ADD COLUMN note text")
        await connection.execute("CREATE TABLE request_tag (request_id uuid, tag text)")
        expanded = await prepare_failures(url, release.queries)
        # ...renaming (or dropping) a column the release reads does not.
        await connection.execute("ALTER TABLE request RENAME COLUMN payload TO body")
        contracted = await prepare_failures(url, release.queries)
    finally:
        await connection.close()
    assert expanded == {}
    assert contracted
    assert all("payload" in error for error in contracted.values()), contracted
    assert "request_gateway.domain.requests.GET_SQL" in contracted

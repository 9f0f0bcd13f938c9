"""Migrations: applied once, in order, on a database holding data, under a lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from servicekit.migrations import (
    NOTHING_TO_UNDO,
    MigrationError,
    migrate,
    migrate_back_to,
    migrate_to,
    ran_migrations,
    sql_migration,
)
from servicekit.testing import MakeDatabase

APPS = ["tests.servicekit.demo_app.piccolo_app"]
FIRST = "2026-11-27T20:00:00:000000"
SECOND = "2026-11-27T20:01:00:000000"
ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    # The migration child process imports the demo app from this repository.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


async def test_pending_migrations_run_once_and_in_order(postgres_database: MakeDatabase) -> None:
    url = postgres_database()
    first = await migrate(url, APPS)
    assert "2026-11-27T20:01:00:000000" in first
    again = await migrate(url, APPS)
    assert "No migrations need to be run" in again
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("INSERT INTO demo_item (name) VALUES ('a')")
        assert await connection.fetchval("SELECT colour FROM demo_item") == "red"
    finally:
        await connection.close()


async def test_concurrent_migrations_wait_for_each_other(postgres_database: MakeDatabase) -> None:
    url = postgres_database()
    outputs = await asyncio.gather(migrate(url, APPS), migrate(url, APPS))
    assert sum("No migrations need to be run" in output for output in outputs) == 1


async def test_a_failing_migration_raises_with_piccolos_output(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TABLE demo_item (id int)")  # in the way
    finally:
        await connection.close()
    with pytest.raises(MigrationError) as caught:
        await migrate(url, APPS)
    assert "already exists" in caught.value.output


async def test_migrate_back_to_reverses_the_later_migrations_and_keeps_the_rows(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate(url, APPS)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("INSERT INTO demo_item (name, colour) VALUES ('a', 'blue')")
        log = await migrate_back_to(url, APPS, "demo", FIRST)
        assert SECOND in log
        assert await ran_migrations(connection, "demo") == [FIRST]
        rows = await connection.fetch("SELECT * FROM demo_item")
        assert [dict(row) for row in rows] == [{"id": 1, "name": "a"}]  # colour gone
        again = await migrate_back_to(url, APPS, "demo", FIRST)
        assert again == NOTHING_TO_UNDO
        await migrate(url, APPS)  # forwards again: the column comes back with its default
        assert await connection.fetchval("SELECT colour FROM demo_item") == "red"
    finally:
        await connection.close()


async def test_migrate_back_to_a_migration_that_never_ran_is_refused(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    await migrate_to(url, APPS, "demo", FIRST)
    with pytest.raises(MigrationError) as caught:
        await migrate_back_to(url, APPS, "demo", SECOND)
    assert FIRST in caught.value.output


async def test_a_migration_without_backwards_statements_refuses_to_be_reversed() -> None:
    manager = await sql_migration("demo", "2026-01-01T00:00:00:000000", "d", ["SELECT 1"])()
    [refuse] = manager.raw_backwards
    with pytest.raises(RuntimeError, match="no backwards statements"):
        refuse()

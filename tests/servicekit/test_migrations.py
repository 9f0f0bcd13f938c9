"""Migrations: applied once, in order, on a database holding data, under a lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from servicekit.migrations import MigrationError, migrate
from servicekit.testing import MakeDatabase

APPS = ["tests.servicekit.demo_app.piccolo_app"]
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

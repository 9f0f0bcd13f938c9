"""`response-processor backup` and `restore`: a processor database backed up, destroyed and
restored holds every row again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from servicekit.testing import table_contents
from tests.response_processor.sample_data import fill
from tests.response_processor.test_cli import run


async def snapshot(url: str) -> tuple[dict[str, Any], list[Any]]:
    """Every table's rows, and the migrations that ran."""
    connection = await asyncpg.connect(url)
    try:
        migrations = await connection.fetch("SELECT app_name, name FROM migration ORDER BY id")
        return await table_contents(connection), [tuple(row) for row in migrations]
    finally:
        await connection.close()


async def test_a_backup_restored_over_dropped_tables_holds_every_row(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await fill(connection)
    finally:
        await connection.close()
    before = await snapshot(database_url)
    archive = tmp_path / "processor.dump"

    made = run(tmp_path, database_url, redis_url, "backup", "--out", str(archive))
    assert made.returncode == 0, made.stderr
    assert f"backup written: {archive}" in made.stdout

    connection = await asyncpg.connect(database_url)
    try:  # destroy: every table goes, data and all
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        for (table,) in tables:
            await connection.execute(f'DROP TABLE "{table}" CASCADE')
    finally:
        await connection.close()

    restored = run(tmp_path, database_url, redis_url, "restore", "--from", str(archive), "--yes")
    assert restored.returncode == 0, restored.stderr
    after = await snapshot(database_url)
    assert after == before
    counts = {table: len(rows) for table, rows in after[0].items()}
    assert (counts["app_user"], counts["document"], counts["request"]) == (2, 2, 3)
    assert counts["dead_letter"] == 1

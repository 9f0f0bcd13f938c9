"""Point-in-time recovery: a server archiving its WAL, a base backup, rows written, a time
noted, more rows written; the base backup recovered to that time in a fresh server holds
exactly the first rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from servicekit.pitr import LocalServer, base_backup, prepare_recovery
from tests.pitr_fixtures import (  # noqa: F401 - fixtures, by name
    archiving_server,
    pg_bin,
    pitr_work,
    recovered_server,
    switch_and_wait_archived,
)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _ids(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        return [row["id"] for row in await connection.fetch("SELECT id FROM request ORDER BY id")]
    finally:
        await connection.close()


async def test_a_restore_to_a_noted_time_finds_exactly_the_rows_written_before_it(
    archiving_server: tuple[LocalServer, Path],  # noqa: F811 - the fixture
    pitr_work: Path,  # noqa: F811
) -> None:
    tmp_path = pitr_work
    primary, archive = archiving_server
    url = primary.url()
    await _execute(url, "CREATE TABLE request (id int PRIMARY KEY, at timestamptz DEFAULT now())")
    base = await asyncio.to_thread(base_backup, url, tmp_path / "base", pg_bin())
    # Rows written after the base backup: only the WAL archive holds them.
    await _execute(url, "INSERT INTO request (id) SELECT generate_series(1, 500)")
    await asyncio.sleep(0.05)
    noted = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await _execute(url, "INSERT INTO request (id) SELECT generate_series(501, 900)")
    await switch_and_wait_archived(url)

    recovered = recovered_server(tmp_path)
    await asyncio.to_thread(
        prepare_recovery, base, archive, recovered.pgdata, noted, owner=recovered.owner
    )
    await asyncio.to_thread(recovered.start)
    try:
        assert await _ids(recovered.url()) == list(range(1, 501))
        # Promoted at the target: the recovered copy takes writes.
        await _execute(recovered.url(), "INSERT INTO request (id) VALUES (1000)")
    finally:
        await asyncio.to_thread(recovered.stop)
    assert await _ids(url) == list(range(1, 901))  # the primary is untouched

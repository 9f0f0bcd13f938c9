"""Point-in-time recovery: a server archiving its WAL, a base backup, rows written, a time
noted, more rows written; the base backup recovered to that time in a fresh server holds
exactly the first rows."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from servicekit.pitr import LocalServer, archive_settings, base_backup, prepare_recovery


def _pg_bin() -> Path:
    # The WAL is read by the same major version that wrote it: pgserver's PostgreSQL 16.
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _owner() -> str | None:
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")  # initdb and postgres refuse to run as root
    return "pgserver"


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder the server's user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="pitr-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def archiving_server(work: Path) -> Iterator[tuple[LocalServer, Path]]:
    """A fresh PostgreSQL 16 archiving its WAL into work/wal-archive."""
    owner = _owner()
    tmp_path = work
    archive = tmp_path / "wal-archive"
    archive.mkdir()
    server = LocalServer(tmp_path / "primary", tmp_path / "sock-primary", _pg_bin(), owner)
    if owner is not None:
        shutil.chown(archive, owner, owner)
    server.init(archive_settings(archive))
    server.start()
    try:
        yield server, archive
    finally:
        server.stop()


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
    archiving_server: tuple[LocalServer, Path], work: Path
) -> None:
    tmp_path = work
    primary, archive = archiving_server
    url = primary.url()
    await _execute(url, "CREATE TABLE request (id int PRIMARY KEY, at timestamptz DEFAULT now())")
    base = await asyncio.to_thread(base_backup, url, tmp_path / "base", _pg_bin())
    # Rows written after the base backup: only the WAL archive holds them.
    await _execute(url, "INSERT INTO request (id) SELECT generate_series(1, 500)")
    await asyncio.sleep(0.05)
    noted = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await _execute(url, "INSERT INTO request (id) SELECT generate_series(501, 900)")
    # Close the segment holding the later rows, as archive_timeout does on a quiet server.
    await _execute(url, "SELECT pg_switch_wal()", "CHECKPOINT")
    await _wait_archived(url)

    recovered = LocalServer(tmp_path / "recovered", tmp_path / "sock-rec", _pg_bin(), _owner())
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


async def _wait_archived(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        current = await connection.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn())")
        for _ in range(200):
            last = await connection.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
            if last is not None and last >= await _previous(connection, current):
                return
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    raise AssertionError("the WAL segment was not archived")


async def _previous(connection: asyncpg.Connection, current: str) -> str:
    # The segment before the current one: the one pg_switch_wal closed.
    return str(
        await connection.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn() - 16 * 1024 * 1024)")
    )

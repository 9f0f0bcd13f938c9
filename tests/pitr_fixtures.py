"""A PostgreSQL 16 that archives its WAL, for the point-in-time recovery tests (test_pitr*)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from servicekit.pitr import LocalServer, archive_settings


def pg_bin() -> Path:
    """pgserver's PostgreSQL 16 programs: the WAL is read by the version that wrote it."""
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def server_owner() -> str | None:
    """The user to run initdb and postgres as (they refuse root)."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


@pytest.fixture
def pitr_work() -> Iterator[Path]:
    """A folder the server's user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="pitr-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def archiving_server(pitr_work: Path) -> Iterator[tuple[LocalServer, Path]]:
    """A fresh PostgreSQL 16 archiving its WAL into pitr_work/wal-archive."""
    owner = server_owner()
    archive = pitr_work / "wal-archive"
    archive.mkdir()
    if owner is not None:
        shutil.chown(archive, owner, owner)
    server = LocalServer(pitr_work / "primary", pitr_work / "sock-primary", pg_bin(), owner)
    server.init(archive_settings(archive))
    server.start()
    try:
        yield server, archive
    finally:
        server.stop()


def recovered_server(work: Path) -> LocalServer:
    """A server (not yet prepared or started) for a recovered copy."""
    return LocalServer(work / "recovered", work / "sock-rec", pg_bin(), server_owner())


async def switch_and_wait_archived(url: str) -> None:
    """Close the current WAL segment (as archive_timeout does) and wait until it is archived."""
    connection = await asyncpg.connect(url)
    try:
        closed = await connection.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn())")
        await connection.execute("SELECT pg_switch_wal()")
        for _ in range(400):
            last = await connection.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
            if last is not None and last >= closed:
                return
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    raise AssertionError("the WAL segment was not archived")

"""The restore drill: the newest scheduled backup restored into a scratch database and checked.

`restore_drill` creates `<name>_drill` on the same server (dropping a left-over one), restores
the newest archive of the backup folder into it with `servicekit.backup.restore`, checks that
every migration the release knows has run (the backup is at head: a restore would need no
migration to serve) and counts every table's rows, then drops the scratch database. The time
it took, restore and checks together, is the measured RTO of a restore (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from servicekit.backup import CONNECT_TIMEOUT_S, Progress, restore
from servicekit.backup_errors import BackupError, BackupErrorCode
from servicekit.backup_schedule import Archive, newest_archive
from servicekit.migrations import pending_migrations

__all__ = ["DrillResult", "restore_drill"]

SCRATCH_SUFFIX: Final = "_drill"


@dataclass(frozen=True, slots=True)
class DrillResult:
    """What the drill restored and found."""

    archive: Archive
    rows: dict[str, int]
    restore_s: float
    total_s: float


async def restore_drill(
    database_url: str,
    folder: Path,
    name: str,
    apps: Sequence[str],
    *,
    prefer_path: bool,
    bin_dir: Path | None = None,
    progress: Progress | None = None,
) -> DrillResult:
    """Restore the newest archive of `name` in `folder` into a scratch database and check it."""
    started = time.monotonic()
    archive = await asyncio.to_thread(_newest, folder, name)
    if archive is None:
        raise BackupError(
            BackupErrorCode.ARCHIVE_UNREADABLE, f"no scheduled backup of {name!r} in {folder}"
        )
    scratch = name + SCRATCH_SUFFIX
    scratch_url = _with_database(database_url, scratch)
    await _recreate(database_url, scratch)
    try:
        restoring = time.monotonic()
        await restore(
            scratch_url, archive.path, prefer_path=prefer_path, bin_dir=bin_dir, progress=progress
        )
        restore_s = time.monotonic() - restoring
        rows = await _check(scratch_url, apps)
    finally:
        await _drop(database_url, scratch)
    return DrillResult(archive, rows, restore_s, time.monotonic() - started)


async def _check(url: str, apps: Sequence[str]) -> dict[str, int]:
    connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    try:
        pending = await pending_migrations(connection, apps)
        if pending:
            shown = ", ".join(f"{app}:{migration}" for app, migration in pending)
            raise BackupError(
                BackupErrorCode.RESTORE_FAILED,
                f"the restored backup is not at this release's migrations (missing: {shown})",
            )
        tables = await connection.fetch(
            """SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables
               WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"""
        )
        return {
            # The name comes from pg_tables, quoted by format('%I.%I').
            row["name"]: int(await connection.fetchval(f"SELECT count(*) FROM {row['name']}"))  # noqa: S608
            for row in tables
        }
    finally:
        await connection.close()


def _newest(folder: Path, name: str) -> Archive | None:
    return newest_archive(folder, name) if folder.is_dir() else None


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def _recreate(url: str, database: str) -> None:
    await _drop(url, database)
    await _admin(url, f'CREATE DATABASE "{database}"')


async def _drop(url: str, database: str) -> None:
    await _admin(url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()

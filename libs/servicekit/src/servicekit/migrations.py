"""Run Piccolo migrations for a list of apps, safely when several processes try at once.

Piccolo takes no lock around migrations: two replicas starting together could both run the
same one. `migrate` holds a PostgreSQL advisory lock for the whole run, so the second waits
and then finds nothing left to do. Migrations run in a child process because Piccolo reads
its engine and apps from a configuration module once per process (`servicekit.piccolo_conf`).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import asyncpg
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

# Any fixed 64-bit number that no other advisory lock of ours uses.
MIGRATION_LOCK_ID: Final = 0x41_69_72_6C_6F_63_6B  # "Airlock"
_RUN_PICCOLO: Final = "import sys; from piccolo.main import main; sys.exit(main())"
_ID_LINE: Final = re.compile(r"^ID\s*=\s*['\"](?P<id>[^'\"]+)['\"]", re.MULTILINE)
NOTHING_TO_DO: Final = "No migrations need to be run"


class MigrationError(Exception):
    """A migration failed; `output` holds what Piccolo printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


async def migrate(dsn: str, apps: Sequence[str], *, timeout_s: float = 600.0) -> str:
    """Apply every pending migration of `apps` (in order) to the database; return the log."""
    connection = await asyncpg.connect(dsn, timeout=30)
    try:
        async with asyncio.timeout(timeout_s):
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            # Most starts find nothing to do: say so without starting Piccolo's process.
            if not await pending_migrations(connection, apps):
                return NOTHING_TO_DO
            return await asyncio.to_thread(_run_forwards, dsn, apps, timeout_s)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await connection.close()


async def pending_migrations(
    connection: asyncpg.Connection[Any], apps: Sequence[str]
) -> list[tuple[str, str]]:
    """(app name, migration id) of every migration of `apps` the database has not run."""
    known = [
        (name, migration_id)
        for name, folder in map(_app_folder, apps)
        for migration_id in _migration_ids(folder)
    ]
    has_table = await connection.fetchval("SELECT to_regclass('migration') IS NOT NULL")
    ran: set[tuple[str, str]] = set()
    if has_table:
        rows = await connection.fetch("SELECT app_name, name FROM migration")
        ran = {(row["app_name"], row["name"]) for row in rows}
    return [entry for entry in known if entry not in ran]


def sql_migration(
    app_name: str, migration_id: str, description: str, statements: Sequence[str]
) -> Callable[[], Awaitable[MigrationManager]]:
    """The `forwards` of a hand-written migration: SQL statements run in its transaction.

    One statement per call: asyncpg prepares each, and a prepared statement holds one.
    In the migration module: `forwards = sql_migration("app", ID, DESCRIPTION, STATEMENTS)`.
    """

    async def forwards() -> MigrationManager:
        manager = MigrationManager(
            migration_id=migration_id, app_name=app_name, description=description
        )

        async def run() -> None:
            engine = engine_finder()
            assert engine is not None, "Piccolo runs migrations with a configured engine"
            for statement in statements:
                await engine.run_ddl(statement)

        manager.add_raw(run)
        return manager

    return forwards


def _app_folder(app_module: str) -> tuple[str, Path]:
    config = importlib.import_module(app_module).APP_CONFIG
    return config.app_name, Path(config.resolved_migrations_folder_path)


def _migration_ids(folder: Path) -> list[str]:
    """Migration ids read from the files (Piccolo keeps each in a top-level `ID = "..."`)."""
    ids = []
    for path in sorted(folder.glob("*.py")):
        match = _ID_LINE.search(path.read_text(encoding="utf-8"))
        if match:
            ids.append(match["id"])
    return ids


async def migrate_to(
    dsn: str, apps: Sequence[str], app_name: str, migration_id: str, *, timeout_s: float = 600.0
) -> str:
    """Apply one app's migrations up to and including `migration_id` (a stepwise upgrade)."""
    connection = await asyncpg.connect(dsn, timeout=30)
    try:
        async with asyncio.timeout(timeout_s):
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            return await asyncio.to_thread(
                _run_forwards, dsn, apps, timeout_s, app_name, migration_id
            )
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await connection.close()


def _run_forwards(
    dsn: str, apps: Sequence[str], timeout_s: float, app_name: str = "all", until: str = ""
) -> str:
    env = {
        **os.environ,
        "PICCOLO_CONF": "servicekit.piccolo_conf",
        "PICCOLO_DSN": dsn,
        "PICCOLO_APPS": ",".join(apps),
    }
    result = subprocess.run(
        [sys.executable, "-c", _RUN_PICCOLO, "migrations", "forwards", app_name]
        + ([until] if until else []),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or "Traceback" in output:
        raise MigrationError(f"migrations failed (exit code {result.returncode})", output)
    return output

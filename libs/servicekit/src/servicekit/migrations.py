"""Run Piccolo migrations for a list of apps, safely when several processes try at once.

Piccolo takes no lock around migrations: two replicas starting together could both run the
same one. `migrate`, `migrate_to` and `migrate_back_to` hold a PostgreSQL advisory lock for
the whole run, so the second waits and then finds nothing left to do. Migrations run in a
child process because Piccolo reads its engine and apps from a configuration module once per
process (`servicekit.piccolo_conf`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import asyncpg
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

# Any fixed 64-bit number that no other advisory lock of ours uses.
MIGRATION_LOCK_ID: Final = 0x41_69_72_6C_6F_63_6B  # "Airlock"
CONNECTIONS: Final = 2
"""The most database connections a migration run holds: the one holding the advisory lock
and Piccolo's, in its child process (docs/deployment.md, "Database connections")."""
_RUN_PICCOLO: Final = "import sys; from piccolo.main import main; sys.exit(main())"
_ID_LINE: Final = re.compile(r"^ID\s*=\s*['\"](?P<id>[^'\"]+)['\"]", re.MULTILINE)
NOTHING_TO_DO: Final = "No migrations need to be run"
NOTHING_TO_UNDO: Final = "No migrations need to be reversed"
_NAMESAKES: Final = """
    SELECT app_name, name, ran_on FROM migration WHERE name = ANY($1) AND app_name <> $2
"""
_PUT_BACK: Final = """
    INSERT INTO migration (app_name, name, ran_on) SELECT $1::varchar, $2::varchar, $3
    WHERE NOT EXISTS (SELECT 1 FROM migration WHERE app_name = $1 AND name = $2)
"""


class MigrationError(Exception):
    """A migration failed; `output` holds what Piccolo printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


async def migrate(dsn: str, apps: Sequence[str], *, timeout_s: float = 600.0) -> str:
    """Apply every pending migration of `apps` (in order) to the database; return the log."""
    async with _migration_lock(dsn, timeout_s) as connection:
        # Most starts find nothing to do: say so without starting Piccolo's process.
        if not await pending_migrations(connection, apps):
            return NOTHING_TO_DO
        return await asyncio.to_thread(_run_piccolo, dsn, apps, timeout_s, ["forwards", "all"])


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
    app_name: str,
    migration_id: str,
    description: str,
    statements: Sequence[str],
    backwards: Sequence[str] | None = None,
) -> Callable[[], Awaitable[MigrationManager]]:
    """The `forwards` of a hand-written migration: SQL statements run in its transaction.

    One statement per call: asyncpg prepares each, and a prepared statement holds one.
    In the migration module: `forwards = sql_migration("app", ID, DESCRIPTION, STATEMENTS,
    BACKWARDS)`. `backwards` undoes `statements` (in reverse order, usually); without it the
    migration refuses to be reversed rather than leave its changes behind unrecorded.
    """

    async def forwards() -> MigrationManager:
        manager = MigrationManager(
            migration_id=migration_id, app_name=app_name, description=description
        )
        manager.add_raw(_statements_runner(statements))
        if backwards is None:
            manager.add_raw_backwards(_irreversible(app_name, migration_id))
        else:
            manager.add_raw_backwards(_statements_runner(backwards))
        return manager

    return forwards


def _statements_runner(statements: Sequence[str]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        engine = engine_finder()
        assert engine is not None, "Piccolo runs migrations with a configured engine"
        for statement in statements:
            await engine.run_ddl(statement)

    return run


def _irreversible(app_name: str, migration_id: str) -> Callable[[], None]:
    def refuse() -> None:
        raise RuntimeError(
            f"migration {app_name} {migration_id} has no backwards statements: "
            "restore a backup taken before it instead"
        )

    return refuse


def app_migrations(app_module: str) -> tuple[str, list[str]]:
    """A Piccolo app's name and its migration ids, oldest first (as `migrate` runs them)."""
    name, folder = _app_folder(app_module)
    return name, _migration_ids(folder)


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
    async with _migration_lock(dsn, timeout_s):
        return await asyncio.to_thread(
            _run_piccolo, dsn, apps, timeout_s, ["forwards", app_name, migration_id]
        )


async def migrate_back_to(
    dsn: str, apps: Sequence[str], app_name: str, migration_id: str, *, timeout_s: float = 600.0
) -> str:
    """Reverse every migration of one app that ran after `migration_id` (a rollback).

    `migration_id` itself stays applied; it must be one that ran (MigrationError if not).
    Returns Piccolo's log, or NOTHING_TO_UNDO when `migration_id` is the app's last.
    """
    async with _migration_lock(dsn, timeout_s) as connection:
        ran = await ran_migrations(connection, app_name)
        if migration_id not in ran:
            raise MigrationError(
                f"migration {app_name} {migration_id} has not run on this database",
                f"migrations of {app_name} that ran: {', '.join(ran) or 'none'}",
            )
        later = ran[ran.index(migration_id) + 1 :]
        if not later:
            return NOTHING_TO_UNDO
        # Piccolo forgets a reversed migration by its id alone, whatever its app: other apps'
        # migrations that share an id (authkit's and the processor's do) are put back after.
        namesakes = await connection.fetch(_NAMESAKES, later, app_name)
        # Piccolo reverses from its latest migration down to and including the one named.
        arguments = ["backwards", app_name, f"--migration_id={later[0]}", "--auto_agree"]
        try:
            return await asyncio.to_thread(_run_piccolo, dsn, apps, timeout_s, arguments)
        finally:
            await connection.executemany(_PUT_BACK, namesakes)


async def ran_migrations(connection: asyncpg.Connection[Any], app_name: str) -> list[str]:
    """Ids of one app's migrations that ran on the database, in the order they ran."""
    if not await connection.fetchval("SELECT to_regclass('migration') IS NOT NULL"):
        return []
    rows = await connection.fetch(
        "SELECT name FROM migration WHERE app_name = $1 ORDER BY ran_on, id", app_name
    )
    return [row["name"] for row in rows]


@contextlib.asynccontextmanager
async def _migration_lock(dsn: str, timeout_s: float) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection holding the migration advisory lock (waiting at most `timeout_s`)."""
    connection = await asyncpg.connect(dsn, timeout=30)
    try:
        async with asyncio.timeout(timeout_s):
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            yield connection
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await connection.close()


def _run_piccolo(dsn: str, apps: Sequence[str], timeout_s: float, arguments: list[str]) -> str:
    """Run `piccolo migrations ARGUMENTS` in a child process configured for `apps`."""
    env = {
        **os.environ,
        "PICCOLO_CONF": "servicekit.piccolo_conf",
        "PICCOLO_DSN": dsn,
        "PICCOLO_APPS": ",".join(apps),
    }
    result = subprocess.run(
        [sys.executable, "-c", _RUN_PICCOLO, "migrations", *arguments],
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

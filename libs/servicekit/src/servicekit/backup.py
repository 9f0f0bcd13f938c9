"""Backups of a service's database: `pg_dump` to a file, `pg_restore` from one.

- `backup(url, path)` writes a custom-format archive (`pg_dump -Fc`) under a hidden
  temporary name beside `path`, checks that `pg_restore` can read it, fsyncs it and renames
  it into place: `path` is either the previous file or a complete new backup, never half one.
- `restore(url, path)` checks the archive first, refuses a database that other sessions are
  using or that holds tables the backup lacks, then runs `pg_restore --clean --if-exists
  --no-owner --single-transaction`: the restore applies whole or not at all.
- the client programs are those `servicekit.pg_tools.find_pg_tools` picks for the server's
  major version (`server_major_version`).

Passwords never reach a command line or a message: they go to the programs through
`PGPASSWORD`, and every URL or output shown is scrubbed. Each failure is a `BackupError`
(`servicekit.backup_errors`) with a stable code and exit code (docs/operations.md, "Backup
and restore"). The names of both modules are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from servicekit.backup_errors import BackupError, BackupErrorCode
from servicekit.pg_tools import PgTools, find_pg_tools
from servicekit.redaction import scrub_text

__all__ = [
    "BackupError",
    "BackupErrorCode",
    "BackupResult",
    "PgTools",
    "RestoreResult",
    "backup",
    "find_pg_tools",
    "restore",
    "server_major_version",
]

Progress = Callable[[str], None]
"""Receives one human-readable progress line at a time."""

PROGRESS_INTERVAL_S: Final = 1.0
CONNECT_TIMEOUT_S: Final = 30
CONNECTIONS: Final = 2
"""The most database connections a backup holds: ours (the server's version, the tables)
and pg_dump's (the capacity check counts them: docs/deployment.md, "Database connections")."""
# A table's entry in `pg_restore --list`: "215; 1259 16385 TABLE public request owner".
_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+) ", re.MULTILINE)
_RESTORING_TABLE = re.compile(r"processing data for table \"([^\"]+)\"")
_OUTPUT_TAIL: Final = 20  # lines of a failed program's output shown


@dataclass(frozen=True, slots=True)
class BackupResult:
    """A finished backup."""

    path: Path
    size_bytes: int
    tables: int
    duration_s: float
    tools: PgTools


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """A finished restore."""

    path: Path
    tables: int
    duration_s: float
    tools: PgTools


async def backup(
    database_url: str,
    out_path: Path,
    *,
    prefer_path: bool,
    bin_dir: Path | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Dump the database to `out_path` (custom format), replacing it only once complete."""
    started = time.monotonic()
    tools = await _tools_for(database_url, prefer_path, bin_dir)
    target = _Target.of(database_url)
    part = out_path.with_name(f".{out_path.name}.part")
    await asyncio.to_thread(out_path.parent.mkdir, parents=True, exist_ok=True)
    report = progress or _ignore
    report(f"dumping {target.shown} with {tools.pg_dump} ({tools.origin}, {tools.major})")
    command = [tools.pg_dump, "--format=custom", "--no-password", f"--file={part}"]
    try:
        async with _reporting_size(part, report):
            result = await _run([*command, f"--dbname={target.url}"], target.env)
        if result.returncode != 0:
            raise BackupError(BackupErrorCode.DUMP_FAILED, f"pg_dump failed: {result.tail}")
        tables = len(await _archive_tables(tools, part, BackupErrorCode.DUMP_FAILED))
        await asyncio.to_thread(_publish, part, out_path)
    finally:
        await asyncio.to_thread(part.unlink, missing_ok=True)
    size = (await asyncio.to_thread(out_path.stat)).st_size
    return BackupResult(out_path, size, tables, time.monotonic() - started, tools)


async def restore(
    database_url: str,
    in_path: Path,
    *,
    prefer_path: bool,
    bin_dir: Path | None = None,
    allow_in_use: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Replace the database's objects and rows with the archive's, in one transaction."""
    started = time.monotonic()
    tools = await _tools_for(database_url, prefer_path, bin_dir)
    target = _Target.of(database_url)
    archived = await _archive_tables(tools, in_path, BackupErrorCode.ARCHIVE_UNREADABLE)
    await _check_restorable(database_url, archived, allow_in_use=allow_in_use)
    report = progress or _ignore
    report(f"restoring {in_path} into {target.shown} with {tools.pg_restore} ({tools.origin})")
    command = [
        tools.pg_restore,
        *("--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error"),
        *("--no-password", "--verbose", f"--dbname={target.url}", in_path),
    ]
    result = await _run(command, target.env, on_line=_table_reporter(report))
    if result.returncode != 0:
        raise BackupError(
            BackupErrorCode.RESTORE_FAILED,
            f"pg_restore failed; the database is unchanged (one transaction): {result.tail}",
        )
    return RestoreResult(in_path, len(archived), time.monotonic() - started, tools)


async def server_major_version(database_url: str) -> int:
    """The server's major version (16 for 16.2)."""
    try:
        connection = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BackupError(
            BackupErrorCode.DATABASE_UNREACHABLE,
            f"cannot connect to {_Target.of(database_url).shown}: {type(exc).__name__}: {exc}",
        ) from None
    try:
        return int(await connection.fetchval("SHOW server_version_num")) // 10_000
    finally:
        await connection.close()


async def _tools_for(database_url: str, prefer_path: bool, bin_dir: Path | None) -> PgTools:
    major = await server_major_version(database_url)
    # find_pg_tools runs `pg_dump --version`: off the event loop.
    return await asyncio.to_thread(find_pg_tools, major, prefer_path, bin_dir)


@dataclass(frozen=True, slots=True)
class _Target:
    """A database URL split for the client programs: no password in it, which goes to env."""

    url: str
    env: dict[str, str]
    shown: str  # for messages: no password, no query string

    @classmethod
    def of(cls, database_url: str) -> _Target:
        parts = urlsplit(database_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        password = unquote(parts.password) if parts.password else None
        password = next((value for key, value in query if key == "password"), password)
        query = [(key, value) for key, value in query if key != "password"]
        netloc = parts.netloc.rpartition("@")[2]
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        url = urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/")))
        env = {**os.environ, "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}
        if password:
            env["PGPASSWORD"] = password
        host = parts.hostname or dict(query).get("host", "")
        shown = scrub_text(f"database {parts.path.lstrip('/')!r} on {host or 'localhost'}")
        return cls(url, env, shown)


@dataclass(frozen=True, slots=True)
class _Finished:
    returncode: int
    output: list[str]

    @property
    def tail(self) -> str:
        return scrub_text("\n".join(self.output[-_OUTPUT_TAIL:]) or "(no output)")


async def _run(
    command: Sequence[object], env: dict[str, str], on_line: Progress | None = None
) -> _Finished:
    """Run a client program; its output lines (stdout and stderr together), as they come."""
    process = await asyncio.create_subprocess_exec(
        *map(str, command),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines = []
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if on_line is not None:
            on_line(line)
    return _Finished(await process.wait(), lines)


async def _archive_tables(
    tools: PgTools, path: Path, code: BackupErrorCode
) -> set[tuple[str, str]]:
    """(schema, table) of every table an archive holds; `code` if it cannot be read."""
    if not await asyncio.to_thread(path.is_file):
        raise BackupError(code, f"{path}: no such file")
    result = await _run([tools.pg_restore, "--list", path], dict(os.environ))
    if result.returncode != 0:
        raise BackupError(code, f"{path} is not a readable pg_dump archive: {result.tail}")
    return set(_TABLE.findall("\n".join(result.output)))


async def _check_restorable(
    database_url: str, archived: set[tuple[str, str]], *, allow_in_use: bool
) -> None:
    """Refuse a database that others are using, or that holds tables the archive lacks."""
    connection = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
    try:
        sessions = await connection.fetch(
            """SELECT coalesce(nullif(application_name, ''), client_addr::text, 'local') AS who
               FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend'"""
        )
        present = await connection.fetch(
            """SELECT schemaname, tablename FROM pg_tables
               WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"""
        )
    finally:
        await connection.close()
    if sessions and not allow_in_use:
        who = ", ".join(sorted({row["who"] for row in sessions}))
        raise BackupError(
            BackupErrorCode.DATABASE_IN_USE,
            f"{len(sessions)} other session(s) use the database ({who}): stop the service's "
            "servers and workers first (or pass --force to restore under them)",
        )
    extra = sorted(f"{s}.{t}" for s, t in present if (s, t) not in archived)
    if extra:
        raise BackupError(
            BackupErrorCode.DATABASE_HAS_EXTRA_TABLES,
            f"the database holds tables the backup lacks ({', '.join(extra)}), made by "
            "migrations newer than the backup: reverse them first (migrate --back-to), or "
            "restore into an empty database",
        )


@contextlib.asynccontextmanager
async def _reporting_size(path: Path, report: Progress) -> AsyncIterator[None]:
    """Report the size of a growing file every PROGRESS_INTERVAL_S while the block runs."""

    async def watch() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            with contextlib.suppress(FileNotFoundError):
                size = (await asyncio.to_thread(path.stat)).st_size
                report(f"{format_size(size)} written")

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _table_reporter(report: Progress) -> Progress:
    def on_line(line: str) -> None:
        match = _RESTORING_TABLE.search(line)
        if match:
            report(f"table {match[1]}")

    return on_line


def _publish(part: Path, target: Path) -> None:
    """fsync the finished archive, rename it over `target`, fsync the folder."""
    with part.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(part, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def format_size(size: int) -> str:
    """A byte count for people: 512 B, 12.3 MB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _ignore(line: str) -> None:
    """A progress receiver that drops every line."""

"""The maintenance commands every service's CLI offers, built once here:

- `SERVICE backup --out FILE` and `SERVICE restore --from FILE --yes` (servicekit.backup
  does the work);
- `SERVICE migrate --back-to MIGRATION_ID [--app APP] --yes`: the rollback of an upgrade
  (servicekit.migrations.migrate_back_to).

Without a database URL the service's embedded PostgreSQL under its data folder is used
(started for the command if it is not running, and stopped again after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar, cast

import asyncpg
import msgspec
import structlog

from servicekit.backup import BackupError, Progress, backup, format_size, restore
from servicekit.backup_schedule import run_schedule, scheduled_backup, write_metrics_file
from servicekit.exposure import insecure_transport_warnings
from servicekit.logs import configure_logging
from servicekit.migrations import MigrationError, migrate_back_to
from servicekit.restore_drill import restore_drill
from servicekit.settings import ServiceSettings, SettingsError, json_logs, settings_for_log

BACKUP_COMMANDS: Final = frozenset({"backup", "restore", "restore-drill"})
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EPILOG: Final = (
    "backup/restore exit codes: 0 ok, 1 failed, 2 usage (restore without --yes), "
    "3 no pg_dump/pg_restore of the server's version, 4 refused (database in use, or holding "
    "tables the backup lacks; nothing changed)."
)

log = structlog.get_logger("servicekit.backup")


@dataclass(frozen=True, slots=True)
class ServiceDatabase:
    """A service's database: its URL, or (None) the embedded server's database `name`."""

    url: str | None
    data_dir: Path
    name: str
    apps: Sequence[str] = ()  # its Piccolo apps: restore-drill checks their migrations ran

    @property
    def where(self) -> str:
        """Where the database lives, for messages (never the URL: it may hold a password)."""
        if self.url is not None:
            return f"database {self.name!r} on the configured server"
        return f"database {self.name!r} of the embedded server under {self.data_dir}"


def add_backup_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup` and `restore` to a CLI's subcommands."""
    pg_bin_help = (
        "folder holding pg_dump and pg_restore (default: PATH's when a database URL is set, "
        "then pgserver's; the first at least the server's major version)"
    )
    dump = commands.add_parser("backup", help="dump the database to a file (pg_dump -Fc)")
    where = dump.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, metavar="FILE", help="archive to write")
    where.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="scheduled backup: write DIR/NAME-<UTC time>.dump, prune those past --keep-days",
    )
    dump.add_argument(
        "--keep-days", type=float, default=30.0, help="with --dir: days to keep (default 30)"
    )
    dump.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE",
        help="with --dir: write the backup metrics there (node_exporter textfile collector)",
    )
    dump.add_argument(
        "--every",
        type=duration_argument,
        default=3600.0,
        metavar="DURATION",
        help="with --dir: the schedule's interval (3600, 90m, 1h; default 1h), reported as "
        "backup_interval_seconds; the alert fires when the last good backup is two older",
    )
    dump.add_argument(
        "--free-space",
        type=_named_folder,
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="with --dir: report the space free on DIR's file system as "
        "folder_free_bytes{folder=NAME} (database=<the PostgreSQL data volume>); the backup "
        "folder's is always reported, as 'backups'",
    )
    dump.add_argument(
        "--loop", action="store_true", help="with --dir: keep running, one backup every --every"
    )
    dump.add_argument(
        "--metrics-port", type=int, help="with --loop: serve the backup metrics on this port"
    )
    dump.add_argument("--pg-bin", type=Path, metavar="DIR", help=pg_bin_help)
    load = commands.add_parser(
        "restore", help="replace the database's contents with a backup (pg_restore)"
    )
    load.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="FILE", help="archive to read"
    )
    load.add_argument(
        "--yes", action="store_true", help="confirm: the database's current data is replaced"
    )
    load.add_argument(
        "--force", action="store_true", help="restore even while other sessions use the database"
    )
    load.add_argument("--pg-bin", type=Path, metavar="DIR", help=pg_bin_help)
    drill = commands.add_parser(
        "restore-drill",
        help="restore the newest scheduled backup into a scratch database, check it, time it",
    )
    drill.add_argument(
        "--dir", type=Path, required=True, metavar="DIR", help="the scheduled backups' folder"
    )
    drill.add_argument("--pg-bin", type=Path, metavar="DIR", help=pg_bin_help)


def run_backup_command(args: argparse.Namespace, database: ServiceDatabase) -> int:
    """Run `backup` or `restore` from parsed arguments; returns the exit code."""
    if args.command == "restore" and not args.yes:
        print(
            f"restore replaces every table of the {database.where} with the contents of "
            f"{args.source}; what it holds now is lost. Stop the service, take a backup first "
            "if in doubt, and run again with --yes.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        with _database(database) as url:
            return asyncio.run(_run(args, url, database, prefer_path=database.url is not None))
    except BackupError as exc:
        log.error(f"{args.command}_failed", code=exc.code, error=str(exc))
        print(f"error ({exc.code}): {exc}", file=sys.stderr)
        return exc.exit_code


async def _run(
    args: argparse.Namespace, url: str, database: ServiceDatabase, *, prefer_path: bool
) -> int:
    def progress(line: str) -> None:
        print(f"{args.command}: {line}", file=sys.stderr, flush=True)

    name = database.name
    if args.command == "restore-drill":
        drill = await restore_drill(
            url, args.dir, name, database.apps, prefer_path=prefer_path, bin_dir=args.pg_bin,
            progress=progress,
        )  # fmt: skip
        log.info("restore_drill_passed", path=str(drill.archive.path), seconds=drill.total_s)
        print(
            f"restore drill passed: {drill.archive.path} ({format_size(drill.archive.size_bytes)})"
        )
        for table, count in drill.rows.items():
            print(f"  {table}: {count} rows")
        print(
            f"migrations at head; restore {drill.restore_s:.1f} s, total {drill.total_s:.1f} s "
            "(restore, checks and the scratch database's creation and removal)"
        )
        return EXIT_OK
    if args.command == "backup" and args.dir is not None:
        return await _run_scheduled(args, url, name, prefer_path=prefer_path, progress=progress)
    if args.command == "backup":
        made = await backup(
            url, args.out, prefer_path=prefer_path, bin_dir=args.pg_bin, progress=progress
        )
        log.info("backup_written", path=str(made.path), bytes=made.size_bytes, tables=made.tables)
        print(
            f"backup written: {made.path} ({format_size(made.size_bytes)}, {made.tables} "
            f"tables, {made.duration_s:.1f} s, pg_dump {made.tools.major} from "
            f"{made.tools.origin})"
        )
        return EXIT_OK
    done = await restore(
        url,
        args.source,
        prefer_path=prefer_path,
        bin_dir=args.pg_bin,
        allow_in_use=args.force,
        progress=progress,
    )
    log.info("backup_restored", path=str(done.path), tables=done.tables)
    print(f"restored: {done.path} ({done.tables} tables, {done.duration_s:.1f} s)")
    return EXIT_OK


async def _run_scheduled(
    args: argparse.Namespace, url: str, name: str, *, prefer_path: bool, progress: Progress
) -> int:
    """`backup --dir`: one scheduled run (a systemd timer's), or a loop with `--loop`."""
    if args.loop:
        await run_schedule(
            url,
            args.dir,
            name,
            every_s=args.every,
            keep_days=args.keep_days,
            metrics_port=args.metrics_port,
            volumes=dict(args.free_space),
            prefer_path=prefer_path,
            bin_dir=args.pg_bin,
            progress=progress,
        )
        return EXIT_OK
    try:
        run = await scheduled_backup(
            url,
            args.dir,
            name,
            keep_days=args.keep_days,
            prefer_path=prefer_path,
            bin_dir=args.pg_bin,
            progress=progress,
        )
    finally:
        if args.metrics_file is not None:
            write_metrics_file(args.metrics_file, args.dir, name, args.every, dict(args.free_space))
    made = run.made
    log.info("backup_written", path=str(made.path), bytes=made.size_bytes, pruned=len(run.pruned))
    print(
        f"backup written: {made.path} ({format_size(made.size_bytes)}, {made.tables} tables, "
        f"{made.duration_s:.1f} s); pruned {len(run.pruned)} older than {args.keep_days:g} days"
    )
    return EXIT_OK


def _named_folder(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` for `--free-space`: a metric label and an existing folder."""
    name, equals, folder = text.partition("=")
    if not equals or not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR, NAME like 'database'")
    path = Path(folder)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: {folder!r} is not a folder")
    return name, path


def duration_argument(text: str) -> float:
    """Seconds from `3600`, `90m`, `1h` or `2d`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    scale = units.get(text[-1:])
    try:
        value = float(text[:-1]) * scale if scale else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 3600, 90m, 1h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the interval must be positive")
    return value


def add_rollback_arguments(migrate: argparse.ArgumentParser, *, default_app: str) -> None:
    """Add `--back-to`, `--app` and `--yes` to a CLI's `migrate` command."""
    migrate.add_argument(
        "--back-to",
        metavar="MIGRATION_ID",
        help="reverse the migrations of --app that ran after this one (a rollback)",
    )
    migrate.add_argument(
        "--app", default=default_app, help=f"the app of --back-to (default: {default_app})"
    )
    migrate.add_argument("--yes", action="store_true", help="confirm --back-to")


def run_rollback(args: argparse.Namespace, apps: list[str], database: ServiceDatabase) -> int:
    """Run `migrate --back-to`; returns the exit code (MigrationError propagates)."""
    if not args.yes:
        print(
            f"migrate --back-to reverses every migration of {args.app!r} after "
            f"{args.back_to}: columns and tables they added are dropped with their data. "
            "Stop the service, take a backup, and run again with --yes.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    with _database(database) as url:
        output = asyncio.run(migrate_back_to(url, apps, args.app, args.back_to))
    log.info("migrations_reversed", app=args.app, back_to=args.back_to)
    print(output)
    return EXIT_OK


@contextlib.contextmanager
def _database(database: ServiceDatabase) -> Iterator[str]:
    """The URL to work on: the configured one, or the embedded server's."""
    if database.url is not None:
        yield database.url
        return
    from servicekit.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(database.data_dir)
    server.start()
    try:
        yield server.ensure_database(database.name)
    finally:
        server.stop()  # only if this command started it


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def run_service_command(
    args: argparse.Namespace,
    *,
    service: str,
    load: Callable[[], SettingsT],
    dispatch: Callable[[argparse.Namespace, SettingsT], int],
    prefix: str = "",
) -> int:
    """A service CLI's command: settings (exit 2 if bad), logging, then `dispatch`.

    In production, a remote PostgreSQL or Redis reached without TLS is logged as a warning
    (`servicekit.exposure`); a command that refuses its settings itself (SettingsError, e.g.
    `serve` without TLS files) exits 2 like a bad setting.

    Failures a service command can meet are answered with exit 1 and a line on stderr or in
    the log: a migration that failed (with its output), a file or database error.
    """
    try:
        settings = load()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(service, json=json_logs(settings), level=settings.log_level)
    service_log = structlog.get_logger(service.replace("-", "_"))
    # Every service's settings are a msgspec struct (servicekit.settings.load_settings).
    logged = settings_for_log(cast(msgspec.Struct, settings))
    service_log.info("starting", command=args.command, settings=logged)
    if settings.env == "production":
        for warning in insecure_transport_warnings(
            prefix, settings.database_url, settings.redis_url
        ):
            service_log.warning("insecure_transport", problem=warning)
    try:
        return dispatch(args, settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MigrationError as exc:
        print(f"error: {exc}\n{exc.output}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, asyncpg.PostgresError) as exc:
        service_log.error("failed", command=args.command, error=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED

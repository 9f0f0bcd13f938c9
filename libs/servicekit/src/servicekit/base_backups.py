"""Base backups on a schedule: with the WAL archive, what a point-in-time recovery starts from.

`take_base_backup` runs one round, as `airlock-base-backup` (a systemd timer's one-shot, as
the `postgres` user on the database host) does:

1. `pg_basebackup` of the whole server into `FOLDER/.base-STAMP.partial` (tar, gzip, the WAL
   it needs fetched into it: `servicekit.pitr.base_backup`);
2. verified: unpacked into a scratch folder beside it, where `pg_verifybackup` checks every
   file against the backup's manifest (its checksums) and parses the WAL the backup needs;
   the scratch copy is removed;
3. published by renaming it to `FOLDER/base-STAMP` (a folder holding only verified base
   backups), the folder fsynced;
4. base backups older than `keep_days` removed, never the newest;
5. with `archive_dir`: the archived WAL segments older than the oldest kept base backup's
   start removed (`pg_archivecleanup`), since no kept backup can replay from before it.

The folder's state is reported like the dumps' (`servicekit.backup_schedule`): the metrics
`backup_last_success_timestamp_seconds{database="base"}` and the rest, for
node_exporter's textfile collector, so the same stale-backup alert covers base backups.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from servicekit.backup import format_size
from servicekit.backup_schedule import state_metrics, write_registry
from servicekit.maintenance import duration_argument
from servicekit.pitr import base_backup, run_tool

__all__ = [
    "BASE_NAME",
    "BaseBackup",
    "BaseBackupRun",
    "base_backups",
    "main",
    "take_base_backup",
    "verify_base_backup",
]

BASE_NAME: Final = "base"
STAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
# The server on this host, through its socket, as the user running the command (peer auth).
LOCAL_SERVER: Final = "postgresql:///postgres?host=/var/run/postgresql"
_NAME = re.compile(r"^base-(\d{8}T\d{6}Z)$")
_START_WAL = re.compile(r"^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class BaseBackup:
    """One published base backup."""

    path: Path
    taken_at: datetime
    size_bytes: int


@dataclass(frozen=True, slots=True)
class BaseBackupRun:
    """What one round did."""

    made: BaseBackup
    pruned: list[Path]
    wal_kept_from: str | None  # the oldest WAL segment a kept backup needs (archive cleaned)


def base_backups(folder: Path) -> list[BaseBackup]:
    """The published base backups in `folder`, oldest first."""
    found = []
    for path in folder.glob("base-*") if folder.is_dir() else ():
        match = _NAME.match(path.name)
        if match is None or not path.is_dir():
            continue
        taken = datetime.strptime(match[1], STAMP_FORMAT).replace(tzinfo=UTC)
        size = sum(item.stat().st_size for item in path.iterdir())
        found.append(BaseBackup(path, taken, size))
    return sorted(found, key=lambda backup: backup.taken_at)


def take_base_backup(
    database_url: str,
    folder: Path,
    *,
    keep_days: float,
    bin_dir: Path,
    archive_dir: Path | None = None,
    now: datetime | None = None,
) -> BaseBackupRun:
    """One round: back up, verify, publish, prune, clean the WAL archive (blocking)."""
    taken = now or datetime.now(UTC)
    stamp = taken.strftime(STAMP_FORMAT)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".base-{stamp}.partial"
    try:
        base_backup(database_url, partial, bin_dir)
        verify_base_backup(partial, bin_dir)
        final = folder / f"base-{stamp}"
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _fsync_folder(folder)
    cutoff = taken - timedelta(days=keep_days)
    kept = base_backups(folder)
    pruned = [backup.path for backup in kept[:-1] if backup.taken_at < cutoff]
    for path in pruned:
        shutil.rmtree(path)
    oldest_needed = None
    if archive_dir is not None:
        oldest_needed = start_wal_file(base_backups(folder)[0].path)
        run_tool(bin_dir / "pg_archivecleanup", archive_dir, oldest_needed)
    made = next(backup for backup in base_backups(folder) if backup.path.name == final.name)
    return BaseBackupRun(made, pruned, oldest_needed)


def start_wal_file(backup: Path) -> str:
    """The WAL segment a base backup starts from (its `backup_label` names it)."""
    with tarfile.open(backup / "base.tar.gz") as archive:
        label = archive.extractfile("backup_label")
        if label is None:
            raise RuntimeError(f"{backup}: base.tar.gz has no backup_label")
        found = _START_WAL.search(label.read().decode())
    if found is None:
        raise RuntimeError(f"{backup}: backup_label names no start WAL file")
    return found[1]


def verify_base_backup(backup: Path, bin_dir: Path) -> None:
    """Unpack `backup` beside it and have pg_verifybackup check it against its manifest
    (RuntimeError saying what is wrong)."""
    with tempfile.TemporaryDirectory(prefix=".verify-", dir=backup.parent) as scratch:
        data = Path(scratch)
        try:
            with tarfile.open(backup / "base.tar.gz") as archive:
                archive.extractall(data, filter="tar")
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise RuntimeError(f"{backup}: base.tar.gz cannot be read: {exc}") from exc
        run_tool(
            bin_dir / "pg_verifybackup",
            f"--manifest-path={backup / 'backup_manifest'}",
            f"--wal-directory={data / 'pg_wal'}",
            data,
        )


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def main(argv: Sequence[str] | None = None) -> int:
    """`airlock-base-backup`: one round of base backups (a timer's one-shot); exit code."""
    parser = argparse.ArgumentParser(
        prog="airlock-base-backup",
        description="Base backup of the PostgreSQL server, verified, published, pruned; the "
        "WAL archive cleaned of what no kept backup needs. Run it as the postgres user.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="the base backups' folder")
    parser.add_argument(
        "--dbname",
        default=LOCAL_SERVER,
        help=f"the server, as pg_basebackup's --dbname (default {LOCAL_SERVER})",
    )
    parser.add_argument("--keep-days", type=float, default=30.0, help="days to keep (30)")
    parser.add_argument(
        "--every",
        type=duration_argument,
        default=86400.0,
        metavar="DURATION",
        help="the timer's interval (1d), reported as backup_interval_seconds",
    )
    parser.add_argument(
        "--wal-archive", type=Path, metavar="DIR", help="the WAL archive to clean up"
    )
    parser.add_argument(
        "--metrics-file", type=Path, metavar="FILE", help="node_exporter textfile to write"
    )
    parser.add_argument(
        "--pg-bin",
        type=Path,
        metavar="DIR",
        help="folder of pg_basebackup, pg_verifybackup and pg_archivecleanup, of the server's "
        "version (default: the one on PATH)",
    )
    args = parser.parse_args(argv)
    found = shutil.which("pg_basebackup")
    bin_dir = args.pg_bin or (Path(found).parent if found else None)
    if bin_dir is None:
        parser.error(
            "pg_basebackup is not on PATH: give --pg-bin (e.g. /usr/lib/postgresql/16/bin)"
        )
    try:
        run = take_base_backup(
            args.dbname,
            args.dir,
            keep_days=args.keep_days,
            bin_dir=bin_dir,
            archive_dir=args.wal_archive,
        )
    except (RuntimeError, OSError) as exc:
        print(f"base backup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.metrics_file is not None:
            taken = [(backup.taken_at, backup.size_bytes) for backup in base_backups(args.dir)]
            registry = state_metrics(BASE_NAME, args.every, taken, {"base-backups": args.dir})
            write_registry(args.metrics_file, registry)
    kept = f"; WAL archive kept from {run.wal_kept_from}" if run.wal_kept_from else ""
    print(
        f"base backup written: {run.made.path} ({format_size(run.made.size_bytes)}); "
        f"pruned {len(run.pruned)} older than {args.keep_days:g} days{kept}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

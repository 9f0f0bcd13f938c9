"""Backups on a schedule: one archive per run in a folder, old ones pruned, state as metrics.

- `scheduled_backup` writes `FOLDER/NAME-YYYYmmddTHHMMSSZ.dump` with `servicekit.backup.backup`
  (which publishes an archive only once `pg_restore` has read it back: every archive in the
  folder is a verified one), then deletes that database's archives older than `keep_days`
  (never the newest).
- `backup_metrics` reads the folder, not the memory of a process: the newest archive's time
  is the last good backup, so a restarted scheduler, a systemd timer's one-shot run and a
  textfile written after it all report the same thing.
- The metrics include ``folder_free_bytes`` for the backup folder (``backups``) and for each
  volume named with ``volumes`` (``database``: the PostgreSQL data volume, where the backup
  process can see it), read at each scrape, for the same disk-space alert as the drop zones.
- `write_metrics_file` writes them for node_exporter's textfile collector (systemd layout);
  `run_schedule` backs up every interval and serves them on a port (compose layout).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from servicekit.backup import BackupResult, Progress, backup
from servicekit.health import folder_free_bytes, free_bytes

__all__ = [
    "Archive",
    "ScheduledBackup",
    "archives",
    "backup_metrics",
    "newest_archive",
    "run_schedule",
    "scheduled_backup",
    "state_metrics",
    "write_metrics_file",
    "write_registry",
]

STAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
SUFFIX: Final = ".dump"
_STAMP = re.compile(r"-(\d{8}T\d{6}Z)\.dump$")


@dataclass(frozen=True, slots=True)
class Archive:
    """One scheduled backup in the folder."""

    path: Path
    taken_at: datetime
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ScheduledBackup:
    """What one scheduled run did."""

    made: BackupResult
    pruned: list[Path]


def archives(folder: Path, name: str) -> list[Archive]:
    """The database `name`'s scheduled archives in `folder`, oldest first."""
    found = []
    for path in folder.glob(f"{name}-*{SUFFIX}"):
        match = _STAMP.search(path.name)
        if match is None or path.name != f"{name}-{match[1]}{SUFFIX}":
            continue
        taken = datetime.strptime(match[1], STAMP_FORMAT).replace(tzinfo=UTC)
        found.append(Archive(path, taken, path.stat().st_size))
    return sorted(found, key=lambda archive: archive.taken_at)


def newest_archive(folder: Path, name: str) -> Archive | None:
    """The most recent scheduled archive of `name`, if any."""
    found = archives(folder, name)
    return found[-1] if found else None


async def scheduled_backup(
    database_url: str,
    folder: Path,
    name: str,
    *,
    keep_days: float,
    prefer_path: bool,
    bin_dir: Path | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ScheduledBackup:
    """Back up into `folder` under a time-stamped name, then prune archives past `keep_days`."""
    taken = now or datetime.now(UTC)
    out = folder / f"{name}-{taken.strftime(STAMP_FORMAT)}{SUFFIX}"
    made = await backup(
        database_url, out, prefer_path=prefer_path, bin_dir=bin_dir, progress=progress
    )
    pruned = await asyncio.to_thread(prune, folder, name, keep_days, taken)
    return ScheduledBackup(made, pruned)


def prune(folder: Path, name: str, keep_days: float, now: datetime) -> list[Path]:
    """Delete `name`'s archives older than `keep_days` before `now`, always keeping the newest."""
    cutoff = now - timedelta(days=keep_days)
    found = archives(folder, name)
    old = [archive.path for archive in found[:-1] if archive.taken_at < cutoff]
    for path in old:
        path.unlink(missing_ok=True)
    return old


BACKUP_FOLDER: Final = "backups"
"""The backup folder's name in ``folder_free_bytes``."""


def backup_metrics(
    folder: Path, name: str, every_s: float, volumes: Mapping[str, Path] | None = None
) -> CollectorRegistry:
    """A registry holding the folder's backup state for database `name`, run every `every_s`,
    and the space free in the folder and in `volumes` (name: path)."""
    found = archives(folder, name) if folder.is_dir() else []
    taken = [(archive.taken_at, archive.size_bytes) for archive in found]
    return state_metrics(name, every_s, taken, {BACKUP_FOLDER: folder, **(volumes or {})})


def state_metrics(
    name: str,
    every_s: float,
    taken: Sequence[tuple[datetime, int]],
    folders: Mapping[str, Path],
) -> CollectorRegistry:
    """The backup metrics of `name` (scheduled every `every_s`) from its kept backups' times
    and sizes, oldest first, and the space free in `folders`."""
    registry = CollectorRegistry()
    registry.register(_FreeSpace(folders))
    labels = {"database": name}
    interval = Gauge(
        "backup_interval_seconds",
        "The schedule's interval: the alert fires when the last good backup is two older.",
        labelnames=tuple(labels),
        registry=registry,
    )
    interval.labels(**labels).set(every_s)
    last = Gauge(
        "backup_last_success_timestamp_seconds",
        "Unix time of the newest verified scheduled backup (0: none yet).",
        labelnames=tuple(labels),
        registry=registry,
    )
    size = Gauge(
        "backup_last_size_bytes",
        "Size of the newest verified scheduled backup.",
        labelnames=tuple(labels),
        registry=registry,
    )
    count = Gauge(
        "backup_archives",
        "Scheduled backups kept in the folder.",
        labelnames=tuple(labels),
        registry=registry,
    )
    newest = taken[-1] if taken else None
    last.labels(**labels).set(newest[0].timestamp() if newest else 0)
    size.labels(**labels).set(newest[1] if newest else 0)
    count.labels(**labels).set(len(taken))
    return registry


def write_registry(path: Path, registry: CollectorRegistry) -> None:
    """Write metrics for node_exporter's textfile collector (atomically, world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    os.chmod(path, 0o644)  # node_exporter runs as its own user; the file holds no secret


def write_metrics_file(
    path: Path,
    folder: Path,
    name: str,
    every_s: float,
    volumes: Mapping[str, Path] | None = None,
) -> None:
    """Write the backup metrics for node_exporter's textfile collector."""
    write_registry(path, backup_metrics(folder, name, every_s, volumes))


class _FreeSpace(Collector):
    """``folder_free_bytes`` of folders by name (one that is missing is left out: the backup
    folder before its first run)."""

    def __init__(self, folders: Mapping[str, Path]) -> None:
        self._folders = dict(folders)

    def collect(self) -> list[GaugeMetricFamily]:
        free = {}
        for name, path in self._folders.items():
            try:
                free[name] = free_bytes(path)
            except OSError:
                continue
        return [folder_free_bytes(free)] if free else []


class _FolderCollector:
    """Re-reads the folder at every scrape (a custom collector for `start_http_server`)."""

    def __init__(
        self, folder: Path, name: str, every_s: float, volumes: Mapping[str, Path] | None
    ) -> None:
        self._args = (folder, name, every_s, volumes)

    def collect(self) -> Sequence[object]:
        return list(backup_metrics(*self._args).collect())


async def run_schedule(
    database_url: str,
    folder: Path,
    name: str,
    *,
    every_s: float,
    keep_days: float,
    metrics_port: int | None,
    volumes: Mapping[str, Path] | None = None,
    prefer_path: bool,
    bin_dir: Path | None = None,
    progress: Progress | None = None,
) -> None:
    """Back up every `every_s` seconds (runs until cancelled); serve the metrics on a port
    (with the free space of `volumes`)."""
    if metrics_port is not None:
        registry = CollectorRegistry()
        registry.register(_FolderCollector(folder, name, every_s, volumes))  # type: ignore[arg-type]
        start_http_server(metrics_port, registry=registry)
    report = progress or (lambda line: None)
    while True:
        newest = await asyncio.to_thread(newest_archive, folder, name)
        # A restart does not back up again before the interval is up.
        due = newest.taken_at.timestamp() + every_s if newest else 0.0
        wait = due - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            await scheduled_backup(
                database_url,
                folder,
                name,
                keep_days=keep_days,
                prefer_path=prefer_path,
                bin_dir=bin_dir,
                progress=progress,
            )
        except Exception as exc:
            report(f"scheduled backup failed ({type(exc).__name__}): {exc}")
            await asyncio.sleep(min(every_s, 300.0))

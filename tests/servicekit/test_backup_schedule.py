"""Scheduled backups: time-stamped verified archives, pruning past the retention, metrics read
from the folder (textfile and HTTP)."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from servicekit.backup_schedule import (
    archives,
    backup_metrics,
    prune,
    run_schedule,
    scheduled_backup,
    write_metrics_file,
)
from servicekit.testing import MakeDatabase

START = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


async def _database_with_rows(make: MakeDatabase) -> str:
    url = make(None)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TABLE request (id int PRIMARY KEY)")
        await connection.execute("INSERT INTO request SELECT generate_series(1, 100)")
    finally:
        await connection.close()
    return url


async def test_each_run_adds_a_time_stamped_archive_and_prunes_those_past_the_retention(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = await _database_with_rows(postgres_database)
    for day in (0, 1, 2, 3):
        run = await scheduled_backup(
            url,
            tmp_path,
            "gateway",
            keep_days=2,
            prefer_path=False,
            now=START + timedelta(days=day),
        )
        assert run.made.tables == 1
    kept = [archive.taken_at for archive in archives(tmp_path, "gateway")]
    # Day 0 is older than two days on day 3; day 1 is exactly at the cutoff and stays.
    assert kept == [START + timedelta(days=day) for day in (1, 2, 3)]
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob(".*.part")))


async def test_the_newest_archive_is_never_pruned(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = await _database_with_rows(postgres_database)
    await scheduled_backup(url, tmp_path, "gateway", keep_days=30, prefer_path=False, now=START)
    # A clock far ahead (or a long outage of the schedule) keeps the last good archive.
    assert prune(tmp_path, "gateway", 30, START + timedelta(days=400)) == []
    assert len(archives(tmp_path, "gateway")) == 1


async def test_the_metrics_file_reports_the_newest_archive(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = await _database_with_rows(postgres_database)
    folder = tmp_path / "backups"
    metrics = tmp_path / "textfile" / "airlock-backup-gateway.prom"
    write_metrics_file(metrics, folder, "gateway", 3600)
    assert _samples(metrics.read_text())["backup_last_success_timestamp_seconds"] == 0

    run = await scheduled_backup(url, folder, "gateway", keep_days=30, prefer_path=False, now=START)
    write_metrics_file(metrics, folder, "gateway", 3600)
    samples = _samples(metrics.read_text())
    assert samples["backup_last_success_timestamp_seconds"] == START.timestamp()
    assert samples["backup_last_size_bytes"] == run.made.size_bytes
    assert samples["backup_archives"] == 1
    assert samples["backup_interval_seconds"] == 3600


def test_the_free_space_of_the_backup_folder_and_named_volumes_is_read_at_each_collection(
    tmp_path: Path,
) -> None:
    folder, volume = tmp_path / "backups", tmp_path / "volume"
    volumes = {"database": volume}
    registry = backup_metrics(folder, "processor", 3600, volumes)
    # Neither exists yet: no sample rather than a false zero.
    assert registry.get_sample_value("folder_free_bytes", {"folder": "backups"}) is None
    folder.mkdir()
    volume.mkdir()
    for name in ("backups", "database"):
        free = registry.get_sample_value("folder_free_bytes", {"folder": name})
        expected = shutil.disk_usage(tmp_path).free
        assert free is not None
        assert abs(free - expected) < 256 * 1024 * 1024, (name, free, expected)


def test_a_folder_without_archives_reports_no_backup(tmp_path: Path) -> None:
    registry = backup_metrics(tmp_path / "missing", "processor", 3600)
    value = registry.get_sample_value(
        "backup_last_success_timestamp_seconds", {"database": "processor"}
    )
    assert value == 0


async def test_the_schedule_backs_up_at_once_and_serves_its_metrics(
    postgres_database: MakeDatabase, tmp_path: Path, unused_tcp_port: int
) -> None:
    url = await _database_with_rows(postgres_database)
    task = asyncio.create_task(
        run_schedule(
            url,
            tmp_path,
            "gateway",
            every_s=3600,
            keep_days=30,
            metrics_port=unused_tcp_port,
            volumes={"database": tmp_path},
            prefer_path=False,
        )
    )
    try:
        for _ in range(300):
            if archives(tmp_path, "gateway"):
                break
            await asyncio.sleep(0.1)
        body = await asyncio.to_thread(_get, f"http://127.0.0.1:{unused_tcp_port}/metrics")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(archives(tmp_path, "gateway")) == 1
    assert _samples(body)["backup_archives"] == 1
    assert 'folder_free_bytes{folder="database"}' in body
    assert 'folder_free_bytes{folder="backups"}' in body


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - http://127.0.0.1
        return str(response.read().decode())


def _samples(text: str) -> dict[str, float]:
    """The gateway database's sample values by metric name, from the text format."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels == {"database": "gateway"}
    }

"""Scheduled base backups (`airlock-base-backup`): taken from a server archiving its WAL,
verified before they are published, pruned past the retention, the WAL archive cleaned of
what no kept backup needs, and their state written for the stale-backup alert."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from servicekit.base_backups import (
    base_backups,
    start_wal_file,
    take_base_backup,
    verify_base_backup,
)
from servicekit.pitr import LocalServer
from tests.pitr_fixtures import (  # noqa: F401 - fixtures, by name
    archiving_server,
    pg_bin,
    pitr_work,
    switch_and_wait_archived,
)

START = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _segments(archive: Path) -> list[str]:
    return sorted(path.name for path in archive.iterdir() if len(path.name) == 24)


async def test_rounds_publish_verified_backups_prune_old_ones_and_clean_the_wal_archive(
    archiving_server: tuple[LocalServer, Path],  # noqa: F811 - the fixture
    pitr_work: Path,  # noqa: F811
) -> None:
    primary, archive = archiving_server
    url, folder = primary.url(), pitr_work / "base-backups"
    first = await asyncio.to_thread(
        take_base_backup,
        url,
        folder,
        keep_days=30,
        bin_dir=pg_bin(),
        archive_dir=archive,
        now=START,
    )
    assert first.made.path == folder / "base-20261101T030000Z"
    assert {p.name for p in first.made.path.iterdir()} >= {"base.tar.gz", "backup_manifest"}
    assert first.pruned == []
    # Nothing but published backups in the folder (no partial, no scratch copy left).
    assert [p.name for p in folder.iterdir()] == [first.made.path.name]
    for _ in range(3):  # WAL the first backup's replay would need, then more
        await switch_and_wait_archived(url)
    archived = _segments(archive)
    assert archived[0] <= start_wal_file(first.made.path)

    later = START + timedelta(days=31)
    second = await asyncio.to_thread(
        take_base_backup,
        url,
        folder,
        keep_days=30,
        bin_dir=pg_bin(),
        archive_dir=archive,
        now=later,
    )
    # The first is past the retention and goes; the WAL before the second's start goes too.
    assert second.pruned == [first.made.path]
    assert [b.path for b in base_backups(folder)] == [second.made.path]
    assert second.wal_kept_from == start_wal_file(second.made.path)
    assert all(name >= second.wal_kept_from for name in _segments(archive))
    assert _segments(archive)[0] > archived[0]  # the segments only the first needed are gone


async def test_a_backup_that_does_not_match_its_manifest_is_refused(
    archiving_server: tuple[LocalServer, Path],  # noqa: F811
    pitr_work: Path,  # noqa: F811
) -> None:
    primary, _ = archiving_server
    run = await asyncio.to_thread(
        take_base_backup, primary.url(), pitr_work / "b", keep_days=30, bin_dir=pg_bin()
    )
    manifest = run.made.path / "backup_manifest"
    document = json.loads(manifest.read_text())
    entry = next(f for f in document["Files"] if f["Path"] == "PG_VERSION")
    entry["Size"] += 1
    manifest.write_text(json.dumps(document))
    with pytest.raises(RuntimeError, match="pg_verifybackup failed"):
        await asyncio.to_thread(verify_base_backup, run.made.path, pg_bin())
    (run.made.path / "base.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(RuntimeError, match="cannot be read"):
        await asyncio.to_thread(verify_base_backup, run.made.path, pg_bin())


def test_the_command_writes_the_backup_and_the_metrics_the_alert_reads(
    archiving_server: tuple[LocalServer, Path],  # noqa: F811
    pitr_work: Path,  # noqa: F811
) -> None:
    primary, archive = archiving_server
    folder, metrics = pitr_work / "base-backups", pitr_work / "textfile" / "base.prom"
    done = subprocess.run(
        [
            sys.executable, "-m", "servicekit.base_backups", "--dir", str(folder),
            "--dbname", primary.url(), "--wal-archive", str(archive),
            "--metrics-file", str(metrics), "--pg-bin", str(pg_bin()), "--every", "1d",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (backup,) = base_backups(folder)
    assert f"base backup written: {backup.path}" in done.stdout
    samples = {
        (sample.name, sample.labels.get("database") or sample.labels.get("folder")): sample.value
        for family in text_string_to_metric_families(metrics.read_text())
        for sample in family.samples
    }
    assert samples[("backup_last_success_timestamp_seconds", "base")] == backup.taken_at.timestamp()
    assert samples[("backup_interval_seconds", "base")] == 86400
    assert samples[("backup_archives", "base")] == 1
    assert ("folder_free_bytes", "base-backups") in samples
    unreachable = subprocess.run(
        [sys.executable, "-m", "servicekit.base_backups", "--dir", str(folder), "--dbname",
         "postgresql:///postgres?host=/nonexistent", "--pg-bin", str(pg_bin())],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert "base backup failed: pg_basebackup failed" in unreachable.stderr
    assert len(base_backups(folder)) == 1

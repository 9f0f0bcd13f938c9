"""`request-gateway backup` and `restore`: a gateway database backed up, destroyed and restored
holds every row again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from servicekit.testing import table_contents
from tests.request_gateway.sample_data import fill

CLI = str(Path(sys.executable).with_name("request-gateway"))


def run(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_DATABASE_URL": database_url,
    }
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


async def snapshot(url: str) -> tuple[dict[str, Any], list[Any]]:
    """Every table's rows, and the migrations that ran."""
    connection = await asyncpg.connect(url)
    try:
        migrations = await connection.fetch("SELECT app_name, name FROM migration ORDER BY id")
        return await table_contents(connection), [tuple(row) for row in migrations]
    finally:
        await connection.close()


async def test_a_backup_restored_into_a_recreated_database_holds_every_row(
    tmp_path: Path, database_url: str, postgres_server_url: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await fill(connection)
    finally:
        await connection.close()
    before = await snapshot(database_url)
    archive = tmp_path / "gateway.dump"

    made = run(tmp_path, database_url, "backup", "--out", str(archive))
    assert made.returncode == 0, made.stderr
    assert f"backup written: {archive}" in made.stdout

    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    unconfirmed = run(tmp_path, database_url, "restore", "--from", str(archive))
    assert unconfirmed.returncode == 2
    assert "--yes" in unconfirmed.stderr
    restored = run(tmp_path, database_url, "restore", "--from", str(archive), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert "restored:" in restored.stdout

    after = await snapshot(database_url)
    assert after == before
    assert {table: len(rows) for table, rows in after[0].items()}["request"] == 3


def test_a_scheduled_backup_writes_a_stamped_archive_and_its_metrics_file(
    tmp_path: Path, database_url: str
) -> None:
    folder, metrics = tmp_path / "backups", tmp_path / "textfile" / "gateway.prom"
    volume = tmp_path / "database-volume"
    volume.mkdir()
    made = run(
        tmp_path, database_url, "backup", "--dir", str(folder), "--keep-days", "30",
        "--metrics-file", str(metrics), "--free-space", f"database={volume}",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (archive,) = folder.glob("gateway-*.dump")
    assert f"backup written: {archive}" in made.stdout
    assert "pruned 0 older than 30 days" in made.stdout
    text = metrics.read_text()
    assert 'backup_archives{database="gateway"} 1.0' in text
    # The space free in the backup folder and the named volume, for the disk-space alert.
    assert 'folder_free_bytes{folder="backups"}' in text
    assert 'folder_free_bytes{folder="database"}' in text


def test_backup_refuses_a_free_space_folder_that_is_not_there(
    tmp_path: Path, database_url: str
) -> None:
    for value, said in (
        (f"database={tmp_path / 'missing'}", "is not a folder"),
        (str(tmp_path), "expected NAME=DIR"),
    ):
        made = run(tmp_path, database_url, "backup", "--dir", str(tmp_path), "--free-space", value)
        assert made.returncode == 2
        assert said in made.stderr


def test_backup_refuses_a_bad_interval(tmp_path: Path, database_url: str) -> None:
    made = run(tmp_path, database_url, "backup", "--dir", str(tmp_path), "--every", "soon")
    assert made.returncode == 2
    assert "not a duration" in made.stderr


async def test_the_restore_drill_restores_the_newest_backup_into_a_scratch_database(
    tmp_path: Path, database_url: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await fill(connection)
        users = await connection.fetchval("SELECT count(*) FROM app_user")
    finally:
        await connection.close()
    folder = tmp_path / "backups"
    assert run(tmp_path, database_url, "backup", "--dir", str(folder)).returncode == 0

    drill = run(tmp_path, database_url, "restore-drill", "--dir", str(folder))
    assert drill.returncode == 0, drill.stderr
    (archive,) = folder.glob("gateway-*.dump")
    assert f"restore drill passed: {archive}" in drill.stdout
    assert f"public.app_user: {users} rows" in drill.stdout
    assert "migrations at head; restore" in drill.stdout
    # The scratch database is gone again; the service's own is untouched.
    connection = await asyncpg.connect(database_url)
    try:
        assert not await connection.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = 'gateway_drill'"
        )
        assert await connection.fetchval("SELECT count(*) FROM app_user") == users
    finally:
        await connection.close()


def test_the_restore_drill_without_a_backup_fails_with_its_code(
    tmp_path: Path, database_url: str
) -> None:
    drill = run(tmp_path, database_url, "restore-drill", "--dir", str(tmp_path / "none"))
    assert drill.returncode == 1
    assert "archive_unreadable" in drill.stderr
    assert "no scheduled backup" in drill.stderr

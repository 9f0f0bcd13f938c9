"""Backups: a database backed up, destroyed and restored holds every row again; restores
refuse what would lose data silently; no password is ever shown."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from servicekit.backup import (
    BackupError,
    BackupErrorCode,
    backup,
    find_pg_tools,
    restore,
    server_major_version,
)
from servicekit.embedded import EmbeddedPostgres
from servicekit.maintenance import ServiceDatabase, run_backup_command
from servicekit.testing import MakeDatabase, imported_modules, table_contents

PASSWORD = "s3cret-backup-pw"
SCHEMA = [
    """CREATE TABLE item (id uuid PRIMARY KEY, name text NOT NULL, tags varchar(16)[],
           data jsonb, price numeric(10, 2), made_at timestamptz DEFAULT now(), blob bytea)""",
    "CREATE TABLE note (id bigserial PRIMARY KEY, item_id uuid REFERENCES item, body text)",
    "CREATE INDEX note_item_idx ON note (item_id)",
    """CREATE FUNCTION note_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'note is append-only'; END $$""",
    """CREATE TRIGGER note_no_change BEFORE UPDATE OR DELETE ON note
           FOR EACH ROW EXECUTE FUNCTION note_append_only()""",
]


async def _filled(url: str) -> dict[str, list[dict[str, object]]]:
    connection = await asyncpg.connect(url)
    try:
        for statement in SCHEMA:
            await connection.execute(statement)
        for number in range(50):
            item_id = uuid.uuid4()
            await connection.execute(
                """INSERT INTO item (id, name, tags, data, price, blob)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                item_id,
                f"item {number} ü\t'quoted'",
                ["a", str(number)],
                f'{{"n": {number}, "nested": {{"x": [1, 2]}}}}',
                number * 1.25,
                bytes(range(number % 256)),
            )
            await connection.execute(
                "INSERT INTO note (item_id, body) VALUES ($1, 'first'), ($1, NULL)", item_id
            )
        return await table_contents(connection)
    finally:
        await connection.close()


async def _contents(url: str) -> dict[str, list[dict[str, object]]]:
    connection = await asyncpg.connect(url)
    try:
        return await table_contents(connection)
    finally:
        await connection.close()


async def _admin(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _with_password(url: str) -> str:
    return url.replace("postgres:@", f"postgres:{PASSWORD}@", 1)


async def test_a_database_backed_up_dropped_and_recreated_is_restored_row_for_row(
    postgres_database: MakeDatabase, postgres_server_url: str, tmp_path: Path
) -> None:
    url = postgres_database()
    before = await _filled(url)
    archive = tmp_path / "backups" / "db.dump"
    made = await backup(url, archive, prefer_path=False)
    assert made.path == archive
    assert made.size_bytes == archive.stat().st_size > 0
    assert made.tables == 2
    assert [path.name for path in archive.parent.iterdir()] == ["db.dump"]  # no .part left

    name = urlsplit(url).path.lstrip("/")
    await _admin(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)')
    await _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    done = await restore(url, archive, prefer_path=False)
    assert done.tables == 2

    assert await _contents(url) == before
    connection = await asyncpg.connect(url)
    try:  # indexes, functions and triggers came back too
        assert await connection.fetchval("SELECT to_regclass('note_item_idx')") is not None
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("DELETE FROM note")
    finally:
        await connection.close()


async def test_tables_dropped_after_the_backup_are_restored_in_place(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = postgres_database()
    before = await _filled(url)
    archive = tmp_path / "db.dump"
    await backup(url, archive, prefer_path=False)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("DROP TABLE note")
        await connection.execute("UPDATE item SET name = 'changed'")
    finally:
        await connection.close()
    await restore(url, archive, prefer_path=False)
    assert await _contents(url) == before


async def test_a_backup_replaces_an_older_file_whole(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = postgres_database()
    await _filled(url)
    archive = tmp_path / "db.dump"
    archive.write_text("last week's backup")
    await backup(url, archive, prefer_path=False)
    assert archive.read_bytes().startswith(b"PGDMP")  # the custom format's magic


async def test_restore_refuses_a_database_other_sessions_are_using(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = postgres_database()
    before = await _filled(url)
    archive = tmp_path / "db.dump"
    await backup(url, archive, prefer_path=False)
    user = await asyncpg.connect(url, server_settings={"application_name": "request-gateway"})
    try:
        await user.execute("UPDATE item SET name = 'changed'")
        with pytest.raises(BackupError) as refused:
            await restore(url, archive, prefer_path=False)
        assert refused.value.code == BackupErrorCode.DATABASE_IN_USE
        assert refused.value.exit_code == 4
        assert "request-gateway" in str(refused.value)
        assert await user.fetchval("SELECT DISTINCT name FROM item") == "changed"  # untouched
        await restore(url, archive, prefer_path=False, allow_in_use=True)
    finally:
        await user.close()
    assert await _contents(url) == before


async def test_restore_refuses_a_database_holding_tables_the_backup_lacks(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = postgres_database()
    await _filled(url)
    archive = tmp_path / "db.dump"
    await backup(url, archive, prefer_path=False)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TABLE newer (id int)")  # a later migration's
    finally:
        await connection.close()
    with pytest.raises(BackupError) as refused:
        await restore(url, archive, prefer_path=False)
    assert refused.value.code == BackupErrorCode.DATABASE_HAS_EXTRA_TABLES
    assert "public.newer" in str(refused.value)


async def test_an_unreadable_archive_is_refused_before_anything_changes(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = postgres_database()
    before = await _filled(url)
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(b"PGDMP this is not an archive")
    for path in (damaged, tmp_path / "missing.dump"):
        with pytest.raises(BackupError) as refused:
            await restore(url, path, prefer_path=False)
        assert refused.value.code == BackupErrorCode.ARCHIVE_UNREADABLE
        assert refused.value.exit_code == 1
    assert await _contents(url) == before


async def test_no_message_or_progress_line_shows_the_password(
    postgres_database: MakeDatabase, tmp_path: Path
) -> None:
    url = _with_password(postgres_database())  # the test server trusts local connections
    await _filled(url)
    lines: list[str] = []
    archive = tmp_path / "db.dump"
    await backup(url, archive, prefer_path=False, progress=lines.append)
    await restore(url, archive, prefer_path=False, progress=lines.append)
    assert lines
    assert any("table public.item" in line for line in lines)
    assert not any(PASSWORD in line for line in lines)

    unreachable = f"postgresql://postgres:{PASSWORD}@127.0.0.1:9/nowhere"
    with pytest.raises(BackupError) as failed:
        await backup(unreachable, archive, prefer_path=False)
    assert failed.value.code == BackupErrorCode.DATABASE_UNREACHABLE
    assert PASSWORD not in str(failed.value)


async def test_the_client_programs_are_at_least_the_servers_version(
    postgres_server_url: str, tmp_path: Path
) -> None:
    server = await server_major_version(postgres_server_url)
    for prefer_path in (True, False):
        tools = find_pg_tools(server, prefer_path)
        assert tools.major >= server
        assert tools.pg_dump.name == "pg_dump"
        assert tools.pg_restore.parent == tools.pg_dump.parent or tools.origin == "PATH"
    assert find_pg_tools(server, False).origin == "pgserver"

    with pytest.raises(BackupError) as too_old:
        find_pg_tools(99, True)
    assert too_old.value.code == BackupErrorCode.TOOLS_TOO_OLD
    assert too_old.value.exit_code == 3
    assert "at least" in str(too_old.value)

    with pytest.raises(BackupError) as missing:
        find_pg_tools(server, True, bin_dir=tmp_path)
    assert missing.value.code == BackupErrorCode.TOOLS_MISSING


def test_without_a_database_url_the_embedded_server_is_backed_up_and_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sk-bk-"))  # short: unix socket paths
    database = ServiceDatabase(None, data_dir, "svc")
    archive = tmp_path / "svc.dump"
    server = EmbeddedPostgres(data_dir)  # the running service's; the commands reuse it
    try:
        server.start()
        url = server.ensure_database("svc")
        before = asyncio.run(_filled(url))
        assert run_backup_command(_args("backup", out=archive), database) == 0
        asyncio.run(_admin(url, "DROP TABLE note, item CASCADE"))
        assert run_backup_command(_args("restore", source=archive, yes=True), database) == 0
        assert asyncio.run(_contents(url)) == before
        assert "restored:" in capsys.readouterr().out
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _args(command: str, **values: object) -> argparse.Namespace:
    defaults = {"pg_bin": None, "yes": False, "force": False, "dir": None}
    return argparse.Namespace(command=command, **{**defaults, **values})


def test_finding_the_client_programs_is_apart_from_backing_up(tmp_path: Path) -> None:
    import servicekit.backup
    import servicekit.pg_tools

    imports = imported_modules(Path(servicekit.pg_tools.__file__))
    assert not imports & {"asyncpg", "servicekit.backup"}, imports
    assert servicekit.backup.find_pg_tools is servicekit.pg_tools.find_pg_tools
    with pytest.raises(BackupError) as missing:
        find_pg_tools(16, prefer_path=True, bin_dir=tmp_path)
    assert missing.value.code == BackupErrorCode.TOOLS_MISSING
    assert missing.value.exit_code == 3

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from servicekit.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    resolve_service_urls,
    start_embedded_services,
)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


async def _query(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def _stop_leftover_servers(data_dir: Path) -> None:
    """Stop servers that a failed test's killed child process left running on ``data_dir``."""
    redis_socket = EmbeddedRedis(data_dir).socket_path
    if redis_socket.exists():
        with contextlib.suppress(redis.RedisError):
            redis.Redis(unix_socket_path=str(redis_socket)).shutdown(nosave=True)
    postmaster = data_dir / "postgres" / "postmaster.pid"
    if postmaster.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            # SIGINT is PostgreSQL's "fast" shutdown.
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # pytest's own temporary folders are deep; unix socket paths must stay short.
    path = Path(tempfile.mkdtemp(prefix="sk-test-"))
    try:
        yield path
    finally:
        _stop_leftover_servers(path)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[EmbeddedPostgres]:
    folder = Path(tempfile.mkdtemp(prefix="sk-test-pg-"))
    server = EmbeddedPostgres(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _stop_leftover_servers(folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_redis_starts_on_a_unix_socket_without_a_tcp_port(data_dir: Path) -> None:
    server = EmbeddedRedis(data_dir)
    url = server.start()
    try:
        assert url == f"unix://{data_dir.resolve()}/redis/redis.sock?db=0"
        assert _answers(url)
        assert server.started
        assert (data_dir / "redis" / "redis.pid").read_text().strip().isdigit()
        config = (data_dir / "redis" / "redis.conf").read_text()
        assert "port 0" in config
        assert "appendonly yes" in config
    finally:
        server.stop()
    assert not _answers(url)


def test_redis_is_reused_and_only_its_starter_stops_it(data_dir: Path) -> None:
    starter = EmbeddedRedis(data_dir)
    url = starter.start()
    try:
        reuser = EmbeddedRedis(data_dir)
        assert reuser.start() == url
        assert not reuser.started
        reuser.stop()
        assert _answers(url)
    finally:
        starter.stop()
    assert not _answers(url)


def test_redis_keeps_its_data_across_restarts(data_dir: Path) -> None:
    first = EmbeddedRedis(data_dir)
    url = first.start()
    client = redis.Redis.from_url(url)
    client.set("kept", "yes")
    client.close()
    first.stop()

    second = EmbeddedRedis(data_dir)
    try:
        client = redis.Redis.from_url(second.start())
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        second.stop()


def test_redis_socket_moves_to_a_short_folder_when_the_data_dir_is_deep(data_dir: Path) -> None:
    deep = data_dir / ("d" * 60) / ("e" * 60)
    server = EmbeddedRedis(deep)
    url = server.start()
    try:
        assert len(os.fsencode(server.socket_path)) <= 107
        assert not server.socket_path.is_relative_to(data_dir)
        assert _answers(url)
        assert EmbeddedRedis(deep).socket_path == server.socket_path
    finally:
        server.stop()


def test_redis_listens_on_a_tcp_port_when_asked(data_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = EmbeddedRedis(data_dir, port=port)
    server.start()
    try:
        assert _answers(f"redis://127.0.0.1:{port}/0")
    finally:
        server.stop()


def test_postgres_creates_databases_once_and_serves_them(postgres: EmbeddedPostgres) -> None:
    url = postgres.ensure_database("embedded_test")
    assert postgres.ensure_database("embedded_test") == url
    assert url.startswith("postgresql://postgres:@/embedded_test?host=")
    assert asyncio.run(_query(url, "SELECT current_database()")) == "embedded_test"


def test_postgres_refuses_unsafe_database_names(postgres: EmbeddedPostgres) -> None:
    with pytest.raises(ValueError, match="must match"):
        postgres.ensure_database('x"; DROP DATABASE postgres; --')


def test_postgres_is_reused_and_only_its_starter_stops_it(postgres: EmbeddedPostgres) -> None:
    reuser = EmbeddedPostgres(postgres.pgdata.parent)
    assert reuser.start() == postgres.url()
    assert not reuser.started
    reuser.stop()
    assert asyncio.run(_query(postgres.url(), "SELECT 1")) == 1


def test_resolve_service_urls_starts_only_what_is_missing(
    data_dir: Path, postgres_server_url: str
) -> None:
    services = resolve_service_urls(postgres_server_url, None, data_dir)
    with services:
        assert services.database_url == postgres_server_url
        assert services.postgres is None
        assert services.redis is not None
        assert _answers(services.redis_url)
    assert not _answers(services.redis_url)


def test_embedded_services_stop_when_the_process_gets_sigterm(data_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from servicekit.embedded import start_embedded_services

        with start_embedded_services(Path({str(data_dir)!r}), database="app") as services:
            print("URLS", services.database_url, services.redis_url, flush=True)
            time.sleep(60)
        """
    )
    command = [sys.executable, "-c", script]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            # Lines before it are the launcher's log lines.
            marker = next(line for line in child.stdout if line.startswith("URLS "))
            database_url, redis_url = marker.split()[1:]
            assert _answers(redis_url)
            assert asyncio.run(_query(database_url, "SELECT current_database()")) == "app"

            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=30) == 128 + signal.SIGTERM
        finally:
            child.kill()
    assert not _answers(redis_url)
    with pytest.raises(FileNotFoundError):  # the server removed its socket
        asyncio.run(_query(database_url, "SELECT 1"))


def test_start_embedded_services_gives_both_urls_and_stops_both_on_exit(data_dir: Path) -> None:
    with start_embedded_services(data_dir, database="gateway") as services:
        assert services.database_url.startswith("postgresql://postgres:@/gateway?host=")
        assert services.redis_url.startswith("unix://")
        assert asyncio.run(_query(services.database_url, "SELECT 1")) == 1
        assert _answers(services.redis_url)

    assert not _answers(services.redis_url)
    with pytest.raises(FileNotFoundError):  # the server removed its socket
        asyncio.run(_query(services.database_url, "SELECT 1"))

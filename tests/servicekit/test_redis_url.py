from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from servicekit.redis_url import RedisAddress, parse_redis_url
from tests.servicekit.certificates import make_server_certificate


def test_unix_socket_urls_give_the_socket_path_and_database() -> None:
    address = parse_redis_url("unix:///tmp/sk-1/redis/redis.sock?db=3")

    assert address == RedisAddress(unix_socket_path="/tmp/sk-1/redis/redis.sock", db=3)
    assert address.arq_kwargs()["unix_socket_path"] == "/tmp/sk-1/redis/redis.sock"
    assert address.arq_kwargs()["database"] == 3
    assert address.redis_kwargs() == {
        "unix_socket_path": "/tmp/sk-1/redis/redis.sock",
        "db": 3,
        "username": None,
        "password": None,
    }


def test_tcp_urls_give_host_port_credentials_and_database() -> None:
    address = parse_redis_url("rediss://worker:p%40ss@cache.internal:6380/2")

    assert address == RedisAddress(
        host="cache.internal", port=6380, db=2, username="worker", password="p@ss", ssl=True
    )


def test_defaults_match_redis_conventions() -> None:
    assert parse_redis_url("redis://cache") == RedisAddress(host="cache")


def test_unknown_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported Redis URL scheme"):
        parse_redis_url("http://cache:6379")


def test_the_kwargs_connect_a_real_client(redis_url: str) -> None:
    client = redis.Redis(**parse_redis_url(redis_url).redis_kwargs())
    try:
        assert client.ping()
    finally:
        client.close()


@contextlib.asynccontextmanager
async def pong_over_tls(context: ssl.SSLContext) -> AsyncIterator[int]:
    """A TLS server on 127.0.0.1 and 127.0.0.2 answering every command with PONG: its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            # One answer per command (each a RESP array: a line starting with "*").
            commands = data.startswith(b"*") + data.count(b"\r\n*")
            writer.write(b"+PONG\r\n" * commands)
            await writer.drain()
        writer.close()

    first = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port: int = first.sockets[0].getsockname()[1]
    second = await asyncio.start_server(answer, "127.0.0.2", port, ssl=context)
    try:
        yield port
    finally:
        for server in (first, second):
            server.close()
            await server.wait_closed()


async def test_rediss_checks_that_the_certificate_names_the_host(tmp_path: Path) -> None:
    made = make_server_certificate(tmp_path)  # for localhost and 127.0.0.1, not 127.0.0.2
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(made.cert_file, made.key_file)
    async with pong_over_tls(context) as port:
        named = parse_redis_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={made.ca_file}")
        other = parse_redis_url(f"rediss://127.0.0.2:{port}/0?ssl_ca_certs={made.ca_file}")
        client = redis.asyncio.Redis(**named.redis_kwargs())
        assert await client.ping()
        await client.aclose()
        # Signed by the trusted CA, but for another host: redis-py alone would accept it.
        impostor = redis.asyncio.Redis(**other.redis_kwargs())
        with pytest.raises(redis.exceptions.ConnectionError, match=r"certificate|match"):
            await impostor.ping()
        await impostor.aclose()
    assert other.arq_kwargs()["ssl_check_hostname"] is True

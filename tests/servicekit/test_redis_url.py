from __future__ import annotations

import pytest
import redis

from servicekit.redis_url import RedisAddress, parse_redis_url


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

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis
import redis.asyncio

from servicekit.testing import DatabaseFactory, MakeDatabase, eventually, wait_until

_setup_runs: list[str] = []


async def _create_schema(url: str) -> None:
    _setup_runs.append(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        await connection.execute("INSERT INTO notes VALUES (1, 'from the template')")
    finally:
        await connection.close()


async def _leaves_a_connection_open(url: str) -> None:
    # Deliberately not closed: the factory must still be able to clone the template.
    _open_connections.append(await asyncpg.connect(url))


_open_connections: list[asyncpg.Connection] = []


async def _failing_setup(url: str) -> None:
    raise RuntimeError("migration failed")


async def _fetch(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def _database_names(server_url: str) -> set[str]:
    rows = asyncio.run(_fetch(server_url, "SELECT array_agg(datname) FROM pg_database"))
    assert isinstance(rows, list)
    return set(rows)


def test_each_call_gives_a_fresh_database_cloned_from_the_template(
    postgres_database: MakeDatabase,
) -> None:
    first = postgres_database(_create_schema)
    second = postgres_database(_create_schema)

    assert first != second
    assert asyncio.run(_fetch(first, "SELECT body FROM notes WHERE id = 1")) == "from the template"
    asyncio.run(_fetch(first, "INSERT INTO notes VALUES (2, 'only here') RETURNING id"))
    assert asyncio.run(_fetch(second, "SELECT count(*) FROM notes")) == 1


def test_the_template_is_built_once_per_key(postgres_database: MakeDatabase) -> None:
    runs_before = len(_setup_runs)
    postgres_database(_create_schema, key="schema-once")
    postgres_database(_create_schema, key="schema-once")
    postgres_database(_create_schema, key="schema-once")
    assert len(_setup_runs) == runs_before + 1


def test_without_setup_the_database_is_empty(postgres_database: MakeDatabase) -> None:
    url = postgres_database()
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert asyncio.run(_fetch(url, tables)) == 0


async def test_the_factory_works_from_async_tests_too(postgres_database: MakeDatabase) -> None:
    url = postgres_database(_create_schema)
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM notes") == 1
    finally:
        await connection.close()


# The deliberately leaked connection is garbage-collected here, with a ResourceWarning.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_setup_that_leaves_connections_open_does_not_block_cloning(
    postgres_database: MakeDatabase,
) -> None:
    try:
        url = postgres_database(_leaves_a_connection_open)
        assert asyncio.run(_fetch(url, "SELECT 1")) == 1
    finally:
        _open_connections.clear()
        gc.collect()


def test_databases_are_dropped_and_templates_removed_on_close(postgres_server_url: str) -> None:
    factory = DatabaseFactory(postgres_server_url)
    url = factory.create(_create_schema, key="dropped")
    name = urlsplit(url).path.lstrip("/")
    assert name in _database_names(postgres_server_url)

    factory.drop(url)
    factory.close()

    remaining = _database_names(postgres_server_url)
    assert name not in remaining
    assert not any(
        database.startswith("sk_tmpl") and "dropped" in database for database in remaining
    )


def test_a_failing_setup_raises_and_leaves_no_template(postgres_server_url: str) -> None:
    factory = DatabaseFactory(postgres_server_url)
    before = _database_names(postgres_server_url)

    with pytest.raises(RuntimeError, match="migration failed"):
        factory.create(_failing_setup)

    assert _database_names(postgres_server_url) == before


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_an_empty_redis_database(redis_url: str, attempt: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set(f"left-behind-{attempt}", "x")
    finally:
        client.close()


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers: Iterator[object] = iter([None, 0, [], "ready"])
    assert wait_until(lambda: next(answers), what="an answer", interval_s=0) == "ready"


def test_wait_until_names_what_never_happened() -> None:
    with pytest.raises(AssertionError, match="waiting for the moon"):
        wait_until(lambda: False, what="the moon", timeout_s=0, interval_s=0)


async def test_eventually_polls_an_async_check_on_the_loop() -> None:
    tries: list[int] = []

    async def third_time() -> int | None:
        tries.append(1)
        return len(tries) if len(tries) == 3 else None

    assert await eventually(third_time, what="the third try", interval_s=0) == 3
    with pytest.raises(AssertionError, match="waiting for nothing"):
        await eventually(lambda: asyncio.sleep(0, False), what="nothing", timeout_s=0)


async def test_the_unreachable_and_silent_redis_clients_fail_as_a_dead_server_would(
    unreachable_redis: redis.asyncio.Redis, silent_redis: redis.asyncio.Redis
) -> None:
    with pytest.raises(redis.ConnectionError):
        await unreachable_redis.ping()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(silent_redis.ping(), timeout=0.2)

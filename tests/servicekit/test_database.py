"""`open_pool`: no reset query per release, yet no transaction leaks to the next user."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from servicekit.database import open_pool, query_name
from servicekit.testing import MakeDatabase


async def test_a_connection_released_inside_a_transaction_comes_back_clean(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database(None)
    pool = await open_pool(url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE t (n int)")
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("INSERT INTO t VALUES (1)")
            # released without commit or rollback
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await pool.close()


async def test_the_pool_skips_the_reset_round_trip(postgres_database: MakeDatabase) -> None:
    url = postgres_database(None)
    pool = await open_pool(url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'left-behind'")
        async with pool.acquire() as conn:
            # The session setting survives: proof that no RESET ALL ran on release.
            assert await conn.fetchval("SHOW application_name") == "left-behind"
    finally:
        await pool.close()


async def test_every_query_of_the_pool_is_timed_under_its_name(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database(None)
    pool = await open_pool(url, max_size=1)
    before = _count("select pg_class") + _count("ping")
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname = $1", "x")
            await conn.fetchval("/* query: ping */ SELECT 1")
        await asyncio.sleep(0)  # the logger runs on the loop's next turn
    finally:
        await pool.close()
    assert _count("select pg_class") + _count("ping") == before + 2


def test_query_names_are_bounded_by_the_schema_not_the_arguments() -> None:
    assert query_name("SELECT * FROM request WHERE id = $1") == "select request"
    assert query_name("insert into outbox_batch (a) values ($1)") == "insert outbox_batch"
    assert query_name('UPDATE "request" SET s = $1') == "update request"
    assert query_name("-- why\nDELETE FROM refresh_token WHERE x") == "delete refresh_token"
    assert query_name("/* query: claim_batch */ WITH x AS (SELECT 1) SELECT") == "claim_batch"
    assert query_name("BEGIN") == "other"


def _count(name: str) -> float:
    value = REGISTRY.get_sample_value("db_query_duration_seconds_count", {"query": name})
    return value or 0.0

"""`open_pool`: no reset query per release, yet no transaction leaks to the next user."""

from __future__ import annotations

from servicekit.database import open_pool
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

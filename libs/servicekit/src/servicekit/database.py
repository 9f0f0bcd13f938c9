"""The database types services and libraries pass around, and the pool's gauge."""

from __future__ import annotations

import asyncio
from typing import Any, Final, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from servicekit.metrics import declare_gauge

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""A database connection: a plain one, or one acquired from a pool."""

Pool: TypeAlias = "asyncpg.Pool[Any]"
"""A service's pool (Piccolo's engine pool is an asyncpg pool)."""


POOL_CONNECTIONS = declare_gauge(
    "db_pool_connections",
    "Connections of this process's database pool, by state (in_use, idle, max).",
    multiprocess_mode="livesum",
    labelnames=("state",),
)
POOL_REFRESH_S: Final = 5.0


async def watch_pool(pool: Pool, stop: asyncio.Event | None = None) -> None:
    """Keep `db_pool_connections` current until cancelled (or `stop` is set)."""
    while stop is None or not stop.is_set():
        size, idle = pool.get_size(), pool.get_idle_size()
        POOL_CONNECTIONS.labels("in_use").set(size - idle)
        POOL_CONNECTIONS.labels("idle").set(idle)
        POOL_CONNECTIONS.labels("max").set(pool.get_max_size())
        await asyncio.sleep(POOL_REFRESH_S)

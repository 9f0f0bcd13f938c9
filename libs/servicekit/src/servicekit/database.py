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


async def open_pool(dsn: str, *, max_size: int, command_timeout: float = 60.0) -> Pool:
    """A service's asyncpg pool, without asyncpg's reset query on every release.

    asyncpg's default release runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` — one round trip per request, 10–28% of a one-query endpoint. Airlock's code
    leaves no session state on pooled connections (advisory locks are transaction-scoped,
    LISTEN has its own connection, nothing SETs a session variable), so only asyncpg's own
    cleanup runs: listeners dropped and an open transaction rolled back.
    """
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        command_timeout=command_timeout,
        reset=_keep_session,
    )


async def _keep_session(connection: asyncpg.Connection[Any]) -> None:
    """Nothing to undo (see `open_pool`)."""

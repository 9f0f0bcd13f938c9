"""The database types services and libraries pass around, the pool's gauge, query times.

Every query a service's pool runs is timed (`db_query_duration_seconds{query}`) by an asyncpg
query logger that `open_pool` adds to each connection: one place, no wrapper at call sites.
A query is named by a leading `/* query: NAME */` comment when it has one, else by its verb
and first table (`select request`, `update outbox_batch`): label values stay bounded by the
schema, never by the arguments.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any, Final, TypeAlias

import asyncpg
from asyncpg.connection import LoggedQuery
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Histogram

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

QUERY_DURATION = Histogram(
    "db_query_duration_seconds",
    "Time of each database query this process ran, by query name (servicekit.database).",
    labelnames=("query",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_NAMED = re.compile(r"^\s*/\*\s*query:\s*([a-z0-9_.-]+)\s*\*/", re.IGNORECASE)
_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL)
_VERB = re.compile(r"\b(select|insert|update|delete|with|copy|create|alter|drop|lock|truncate)\b")
_TABLE = re.compile(r"\b(?:from|into|update|join|table)\s+(?:only\s+)?\"?([a-z_][a-z0-9_.]*)")
_MAX_NAME: Final = 60


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
        init=time_queries,
    )


async def time_queries(connection: asyncpg.Connection[Any]) -> None:
    """Record every query `connection` runs in `db_query_duration_seconds` (a pool's `init`)."""
    connection.add_query_logger(_record_query)


def _record_query(record: LoggedQuery) -> None:
    _timer(record.query).observe(record.elapsed)


@functools.lru_cache(maxsize=1024)
def _timer(sql: str) -> Any:
    """The histogram child of a statement (labels() takes a lock and builds a key each call)."""
    return QUERY_DURATION.labels(query_name(sql))


@functools.lru_cache(maxsize=1024)
def query_name(sql: str) -> str:
    """The label a query is timed under: its `/* query: NAME */`, else verb and first table."""
    named = _NAMED.match(sql)
    if named:
        return named[1].lower()
    text = _COMMENTS.sub(" ", sql).lower()
    verb = _VERB.search(text)
    if verb is None:
        return "other"
    # For a CTE, the statement that follows the WITH list names the work.
    table = _TABLE.search(text, verb.start())
    name = f"{verb[1]} {table[1]}" if table else verb[1]
    return name[:_MAX_NAME]


async def _keep_session(connection: asyncpg.Connection[Any]) -> None:
    """Nothing to undo (see `open_pool`)."""

"""A Piccolo engine for a service's tables, configured at start-up rather than at import."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from piccolo.engine.postgres import PostgresEngine

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""A database connection: a plain one, or one acquired from a pool."""

Pool: TypeAlias = "asyncpg.Pool[Any]"
"""A service's pool (Piccolo's engine pool is an asyncpg pool)."""


class DeferredPostgresEngine(PostgresEngine):
    """A PostgresEngine without a database until `open()`.

    Piccolo's engine connects while it is constructed, to check the server's version and
    create extensions. Tables bind to their engine at import time, so a module-level engine
    would connect (or fail to) whenever the tables are imported, before the service has even
    read its settings. This one does nothing until `open(dsn)`; migrations, which need the
    extensions, run with their own engine (`servicekit.migrations`).
    """

    def __init__(self) -> None:
        super().__init__(config={})

    async def check_version(self) -> None:
        """Skipped: there is no database yet at construction."""

    async def prep_database(self) -> None:
        """Skipped: migrations prepare the database."""

    async def open(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        """Point the engine at `dsn` and start its asyncpg pool (once per process)."""
        self.config = {"dsn": dsn}
        await self.start_connection_pool(min_size=min_size, max_size=max_size)

    async def close(self) -> None:
        """Close the pool; safe when it was never opened."""
        await self.close_connection_pool()

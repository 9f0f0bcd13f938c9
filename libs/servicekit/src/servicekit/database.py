"""The database types services and libraries pass around."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""A database connection: a plain one, or one acquired from a pool."""

Pool: TypeAlias = "asyncpg.Pool[Any]"
"""A service's pool (Piccolo's engine pool is an asyncpg pool)."""

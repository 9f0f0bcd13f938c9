"""Shared fixtures of authkit's tests: a migrated database and a Redis client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio

from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase

APPS = ["authkit.piccolo_app"]
SECRET = "test-secret-that-is-long-enough-for-hs256!"
ISSUER = "https://processor.airlock.test"
AUDIENCE = "airlock-processor"


async def migrated(url: str) -> None:
    """Template setup: authkit's migrations."""
    await migrate(url, APPS)


@pytest.fixture
def database_url(postgres_database: MakeDatabase) -> str:
    """A fresh database with authkit's tables."""
    return postgres_database(migrated, key="authkit")


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """One connection to that database."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the (flushed) test Redis."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()

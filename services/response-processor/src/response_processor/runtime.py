"""The resources of a processor process: database, Redis, keys, tokens, the link.

Both the HTTP server and the worker build one `Runtime` at start and close it at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Never

import redis.asyncio
import structlog
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from airlink.endpoint import load_link_encryption, load_link_keys
from airlink.records import ProcessorBusiness
from airlink.runner import Link
from authkit.login_limits import LoginLimiter
from authkit.tokens import AccessTokenIssuer, AccessTokenVerifier, token_pair
from batchformat import SigningKey, TrustedKeys
from response_processor.domain.bootstrap import announce, prepare_database
from response_processor.link.service import NewRequests, ProcessorLink
from response_processor.settings import ProcessorSettings
from servicekit import backup
from servicekit.database import Pool, open_pool, watch_pool
from servicekit.embedded import EmbeddedServices, resolve_service_urls
from servicekit.redis_url import parse_redis_url

log = structlog.get_logger("response_processor")


@dataclass
class Runtime:
    """Everything a request handler or a job needs, built once per process."""

    settings: ProcessorSettings
    services: EmbeddedServices
    pool: Pool
    redis: redis.asyncio.Redis
    arq: ArqRedis
    issuer: AccessTokenIssuer
    verifier: AccessTokenVerifier
    login_limiter: LoginLimiter
    signing_key: SigningKey
    peer_keys: TrustedKeys | None
    link: Link[ProcessorBusiness, Never, NewRequests]


API_POOL_SIZE: Final = 10


@contextlib.asynccontextmanager
async def open_runtime(
    settings: ProcessorSettings, *, pool_size: int = API_POOL_SIZE
) -> AsyncIterator[Runtime]:
    """Build the runtime (starting embedded servers where no URL is set); close it after.

    The database is migrated and bootstrapped first (idempotent; a new admin's password is
    shown once on stderr).
    """
    async with contextlib.AsyncExitStack() as stack:
        services = resolve_service_urls(
            settings.database_url, settings.redis_url, settings.data_dir, database="processor"
        )
        stack.callback(services.stop)
        created = await prepare_database(services.database_url, settings)
        if created is not None:
            announce(created)
        for folder in (settings.outbox_path, settings.inbox_path):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        pool = await open_pool(services.database_url, max_size=pool_size)
        stack.push_async_callback(pool.close)
        gauges = asyncio.create_task(watch_pool(pool))
        stack.push_async_callback(_cancelled, gauges)
        redis_address = parse_redis_url(services.redis_url)
        client = redis.asyncio.Redis(**redis_address.redis_kwargs())
        stack.push_async_callback(client.aclose)
        arq_pool = await create_pool(RedisSettings(**redis_address.arq_kwargs()))
        stack.push_async_callback(arq_pool.aclose)
        signing_key, peer_keys = load_link_keys(
            settings, generate_missing=settings.env != "production"
        )
        issuer, verifier = token_pair(settings)
        link = Link(
            pool,
            settings.link_settings(),
            ProcessorLink(arq_pool),
            signing_key=signing_key,
            peer_keys=peer_keys,
            encryption=load_link_encryption(
                settings, generate_missing=settings.env != "production"
            ),
        )
        stack.callback(link.close)
        yield Runtime(
            settings, services, pool, client, arq_pool, issuer, verifier,
            LoginLimiter(client), signing_key, peer_keys, link,
        )  # fmt: skip


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def worker_pool_size(settings: ProcessorSettings) -> int:
    """A worker's pool: one connection per job it runs at once, and a few for the link, the
    reconciliation and the schedulers beside them."""
    return settings.worker_concurrency + 4


def database_connections(settings: ProcessorSettings, command: str) -> int:
    """The most database connections `response-processor COMMAND` holds at once, running
    (docs/deployment.md, "Database connections"; checked against the compose files)."""
    if command == "serve":
        return API_POOL_SIZE  # the API and its operations port share one runtime
    if command == "worker":
        return worker_pool_size(settings)
    if command == "backup":
        return backup.CONNECTIONS
    raise ValueError(f"no connection count for {command!r}")

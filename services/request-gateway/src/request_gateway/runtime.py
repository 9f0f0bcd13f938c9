"""The resources of a gateway process: database, Redis, keys, tokens, limits, cache, link.

The HTTP server processes and the link worker each build one `Runtime` at start and close
it at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import redis.asyncio
import structlog

from airlink.endpoint import load_link_encryption, load_link_keys
from airlink.records import GatewayBusiness, Request
from airlink.runner import Link
from authkit.login_limits import LoginLimiter
from authkit.sessions import RefreshTokenPolicy
from authkit.tokens import AccessTokenIssuer, AccessTokenVerifier, token_pair
from request_gateway.db.piccolo_app import APPS
from request_gateway.identity.cache import IdentityCache
from request_gateway.link.service import GatewayLink
from request_gateway.settings import GatewaySettings
from servicekit import backup
from servicekit.database import Pool, open_pool, watch_pool
from servicekit.embedded import EmbeddedServices, resolve_service_urls
from servicekit.migrations import migrate
from servicekit.ratelimit import RateLimiter
from servicekit.redis_url import parse_redis_url

RATE_LIMIT_KEY_PREFIX: Final = "gateway:rate:"
# A server worker's LISTEN connections beside its pool: the identity cache's and the change
# feed's (long polls and event streams).
LISTENERS_PER_WORKER: Final = 2
"""Redis keys of the per-user request rate limits (GCRA state, one key per user)."""

log = structlog.get_logger("request_gateway")


@dataclass
class Runtime:
    """Everything a request handler or the link worker needs, built once per process."""

    settings: GatewaySettings
    services: EmbeddedServices
    database_url: str
    pool: Pool
    redis: redis.asyncio.Redis
    issuer: AccessTokenIssuer
    verifier: AccessTokenVerifier
    refresh_policy: RefreshTokenPolicy
    login_limiter: LoginLimiter
    rate_limiter: RateLimiter
    identity: IdentityCache
    link: Link[GatewayBusiness, Request, None]


def embedded_services(settings: GatewaySettings) -> EmbeddedServices:
    """The database and Redis URLs, starting embedded servers where none is configured."""
    return resolve_service_urls(
        settings.database_url, settings.redis_url, settings.data_dir, database="gateway"
    )


async def prepare_database(database_url: str) -> None:
    """Apply the migrations of every app the gateway uses (under an advisory lock)."""
    await migrate(database_url, APPS)


@contextlib.asynccontextmanager
async def open_runtime(settings: GatewaySettings, *, listen: bool = True) -> AsyncIterator[Runtime]:
    """Build the runtime (embedded servers where no URL is set, migrations); close it after.

    `listen` starts the identity cache's notification listener (server processes).
    """
    async with contextlib.AsyncExitStack() as stack:
        services = embedded_services(settings)
        stack.callback(services.stop)
        await prepare_database(services.database_url)
        for folder in (settings.outbox_path, settings.inbox_path):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        pool = await open_pool(services.database_url, max_size=settings.db_pool_size)
        stack.push_async_callback(pool.close)
        stack.push_async_callback(_cancelled, asyncio.create_task(watch_pool(pool)))
        client = redis.asyncio.Redis(**parse_redis_url(services.redis_url).redis_kwargs())
        stack.push_async_callback(client.aclose)
        identity = IdentityCache(pool, ttl_s=settings.identity_cache_s)
        if listen:
            ready = asyncio.Event()
            listener = asyncio.create_task(identity.listen(services.database_url, ready))
            stack.push_async_callback(_cancelled, listener)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), timeout=5)
        issuer, verifier = token_pair(settings)
        link = _link(settings, pool)
        stack.callback(link.close)
        yield Runtime(
            settings=settings,
            services=services,
            database_url=services.database_url,
            pool=pool,
            redis=client,
            issuer=issuer,
            verifier=verifier,
            refresh_policy=RefreshTokenPolicy(
                lifetime=timedelta(days=settings.refresh_token_days),
                family_lifetime=timedelta(days=settings.session_days),
            ),
            login_limiter=LoginLimiter(client),
            rate_limiter=RateLimiter(
                client,
                key_prefix=RATE_LIMIT_KEY_PREFIX,
                on_redis_error=settings.rate_limit_on_redis_error,
                timeout_s=settings.rate_limit_timeout_s,
            ),
            identity=identity,
            link=link,
        )


def _link(settings: GatewaySettings, pool: Pool) -> Link[GatewayBusiness, Request, None]:
    development = settings.env != "production"
    signing_key, peer_keys = load_link_keys(settings, generate_missing=development)
    encryption = load_link_encryption(settings, generate_missing=development)
    return Link(
        pool, settings.link_settings(), GatewayLink(), signing_key=signing_key,
        peer_keys=peer_keys, encryption=encryption,
    )  # fmt: skip


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def database_connections(settings: GatewaySettings, command: str) -> int:
    """The most database connections `request-gateway COMMAND` holds at once, running
    (docs/deployment.md, "Database connections"; checked against the compose files)."""
    if command == "serve":
        # Every worker's pool and listeners, and the operations port's pool in the parent.
        workers = settings.workers * (settings.db_pool_size + LISTENERS_PER_WORKER)
        return workers + settings.db_pool_size
    if command == "worker":
        return settings.db_pool_size
    if command == "backup":
        return backup.CONNECTIONS
    raise ValueError(f"no connection count for {command!r}")

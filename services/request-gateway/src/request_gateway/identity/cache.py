"""Users, profile types and API keys as the request path needs them, cached per process.

An authenticated request needs its user (active? which session version, roles, profile)
and its profile type (limits): read from PostgreSQL once, then served from memory for up
to `ttl_s`. Changes are pushed: every sync import and API key change sends a NOTIFY in its
transaction (`request_gateway.identity.notifications`), and `IdentityCache.listen` drops the
entries it names the moment the change commits. While the listening connection is down,
the cache is bypassed, so a missed notification can never keep a revoked user signed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import asyncpg
import msgspec
import structlog

from request_gateway.identity import notifications
from request_gateway.metrics import IDENTITY_LOOKUPS
from servicekit.database import Pool

RECONNECT_S: Final = 1.0

USER_SQL: Final = """
    SELECT id, username, roles, profile_type, active, must_change_password, session_version
    FROM app_user WHERE id = $1
"""
PROFILE_SQL: Final = """
    SELECT name, requests_per_minute, burst, allowed_request_types, max_payload_bytes,
           max_pending_requests
    FROM profile_type WHERE name = $1
"""
API_KEY_SQL: Final = """
    SELECT id, user_id, expires_at, revoked_at IS NOT NULL AS revoked
    FROM api_key WHERE key_hash = $1
"""

log = structlog.get_logger("request_gateway.identity")


class GatewayUser(msgspec.Struct, frozen=True):
    """A synced user as the request path sees it."""

    id: uuid.UUID
    username: str
    roles: frozenset[str]
    profile_type: str
    active: bool
    must_change_password: bool
    session_version: int


class Profile(msgspec.Struct, frozen=True):
    """A profile type's limits."""

    name: str
    requests_per_minute: int
    burst: int
    allowed_request_types: frozenset[str]
    max_payload_bytes: int
    max_pending_requests: int


class KeyEntry(msgspec.Struct, frozen=True):
    """An API key, by the hash of its secret."""

    id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    revoked: bool


K = TypeVar("K")
V = TypeVar("V")


class _Shelf(Generic[K, V]):
    """One cache: entries with their time of reading, hit and miss counters."""

    def __init__(self, name: str) -> None:
        self.entries: dict[K, tuple[float, V | None]] = {}
        self.hits = IDENTITY_LOOKUPS.labels(name, "hit")
        self.misses = IDENTITY_LOOKUPS.labels(name, "miss")

    def get(self, key: K, now: float, ttl_s: float) -> tuple[bool, V | None]:
        found = self.entries.get(key)
        if found is not None and now - found[0] < ttl_s:
            self.hits.inc()
            return True, found[1]
        self.misses.inc()
        return False, None


class IdentityCache:
    """Per-process cache of users, profile types and API keys (see the module docstring)."""

    def __init__(self, pool: Pool, *, ttl_s: float) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._users: _Shelf[uuid.UUID, GatewayUser] = _Shelf("user")
        self._profiles: _Shelf[str, Profile] = _Shelf("profile_type")
        self._keys: _Shelf[bytes, KeyEntry] = _Shelf("api_key")
        self._listening = False  # entries are trusted only while notifications arrive

    async def user(self, user_id: uuid.UUID) -> GatewayUser | None:
        """The user, or None when the gateway does not (or no longer) know them."""
        return await self._lookup(self._users, user_id, USER_SQL, _user)

    async def profile(self, name: str) -> Profile | None:
        """The profile type, or None when it has not been synced (yet)."""
        return await self._lookup(self._profiles, name, PROFILE_SQL, _profile)

    async def api_key(self, key_hash: bytes) -> KeyEntry | None:
        """The API key with this hash, or None."""
        return await self._lookup(self._keys, key_hash, API_KEY_SQL, _key)

    async def _lookup(self, shelf: _Shelf[K, V], key: K, sql: str, build: Any) -> V | None:
        now = time.monotonic()
        if self._listening:
            found, value = shelf.get(key, now, self.ttl_s)
            if found:
                return value
        else:
            shelf.misses.inc()
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(sql, key)
        value = None if row is None else build(row)
        if self._listening:
            shelf.entries[key] = (now, value)
        return value

    def invalidate(self, message: str) -> None:
        """Drop what a notification names (`request_gateway.identity.notifications`)."""
        if message.startswith(notifications.USER_PREFIX):
            with contextlib.suppress(ValueError):
                self._users.entries.pop(uuid.UUID(message[len(notifications.USER_PREFIX) :]), None)
        elif message.startswith(notifications.PROFILE_PREFIX):
            self._profiles.entries.pop(message[len(notifications.PROFILE_PREFIX) :], None)
        elif message == notifications.API_KEYS:
            self._keys.entries.clear()
        else:
            self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self._users.entries.clear()
        self._profiles.entries.clear()
        self._keys.entries.clear()

    async def listen(self, dsn: str, ready: asyncio.Event | None = None) -> None:
        """Apply notifications until cancelled; reconnect (cache bypassed) when the link drops."""
        while True:
            connection: asyncpg.Connection[Any] | None = None
            try:
                connection = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(
                    notifications.CHANNEL, lambda *args: self.invalidate(args[3])
                )
                self.clear()  # whatever changed while not listening is unknown
                self._listening = True
                if ready is not None:
                    ready.set()
                await lost.wait()
                log.warning("identity_notifications_lost", effect="cache bypassed until back")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("identity_notifications_unavailable", error=str(exc))
            finally:
                self._listening = False
                self.clear()
                if connection is not None and not connection.is_closed():
                    await connection.close(timeout=1)
            await asyncio.sleep(RECONNECT_S)


def _user(row: asyncpg.Record) -> GatewayUser:
    return GatewayUser(
        id=row["id"],
        username=row["username"],
        roles=frozenset(row["roles"]),
        profile_type=row["profile_type"],
        active=row["active"],
        must_change_password=row["must_change_password"],
        session_version=row["session_version"],
    )


def _profile(row: asyncpg.Record) -> Profile:
    return Profile(
        name=row["name"],
        requests_per_minute=row["requests_per_minute"],
        burst=row["burst"],
        allowed_request_types=frozenset(row["allowed_request_types"]),
        max_payload_bytes=row["max_payload_bytes"],
        max_pending_requests=row["max_pending_requests"],
    )


def _key(row: asyncpg.Record) -> KeyEntry:
    return KeyEntry(
        id=row["id"], user_id=row["user_id"], expires_at=row["expires_at"], revoked=row["revoked"]
    )

"""How the auth middleware finds a caller: by access token (user id) or by API key."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Final

from authkit.identity import AuthUser
from request_gateway.domain import api_keys
from request_gateway.identity.cache import GatewayUser, IdentityCache
from servicekit.database import Pool

# `last_used_at` is written at most this often per key and process: a script calling
# every few milliseconds must not turn each of its reads into a write.
TOUCH_EVERY_S: Final = 60.0


class Credentials:
    """The `load_user` and the `X-API-Key` callback of authkit's middleware."""

    def __init__(self, pool: Pool, identity: IdentityCache) -> None:
        self.pool = pool
        self.identity = identity
        self._touched: dict[uuid.UUID, float] = {}

    async def load_user(self, user_id: uuid.UUID) -> AuthUser | None:
        """The user an access token names, as the gateway has them now."""
        user = await self.identity.user(user_id)
        return None if user is None else _auth_user(user)

    async def from_api_key(self, key: str) -> AuthUser | None:
        """The owner of a live API key; None for an unknown, revoked or expired one."""
        digest = api_keys.key_hash(key)
        if digest is None:
            return None
        entry = await self.identity.api_key(digest)
        if entry is None or entry.revoked or entry.expires_at <= datetime.now(UTC):
            return None
        user = await self.identity.user(entry.user_id)
        if user is None:
            return None
        await self._touch(entry.id)
        # API keys carry no session version: the user's current one always matches.
        return _auth_user(user)

    async def _touch(self, key_id: uuid.UUID) -> None:
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        async with self.pool.acquire() as conn:
            await api_keys.touch(conn, key_id)


def _auth_user(user: GatewayUser) -> AuthUser:
    return AuthUser(
        id=user.id,
        roles=user.roles,
        session_version=user.session_version,
        must_change_password=user.must_change_password,
        active=user.active,
    )

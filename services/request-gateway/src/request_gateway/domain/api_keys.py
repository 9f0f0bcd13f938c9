"""API keys: long-lived credentials a user makes for scripts, sent as `X-API-Key`.

A key reads `ak_<8 hex>_<43 base64url>`. Only its SHA-256 is stored (the key is 256 random
bits, so a fast hash is enough, and lookups stay one index probe); the `ak_<8 hex>` prefix
is kept in clear so a user can tell keys apart. The key itself is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Final

import msgspec

from request_gateway.errors import GatewayErrorCode, gateway_error
from request_gateway.identity import notifications
from servicekit.database import Connection

KEY_PREFIX: Final = "ak_"
KEY_SHAPE: Final = re.compile(r"ak_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")

COLUMNS: Final = "id, name, prefix, created_at, expires_at, revoked_at, last_used_at"
LIVE_COUNT_SQL: Final = """
    SELECT count(*) FROM api_key
    WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
"""
INSERT_SQL: Final = f"""
    INSERT INTO api_key (id, user_id, name, prefix, key_hash, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}
"""  # noqa: S608
LIST_SQL: Final = f"SELECT {COLUMNS} FROM api_key WHERE user_id = $1 ORDER BY created_at DESC"  # noqa: S608
REVOKE_SQL: Final = f"""
    UPDATE api_key SET revoked_at = coalesce(revoked_at, now()),
                       revoked_reason = coalesce(revoked_reason, 'revoked')
    WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}
"""  # noqa: S608
TOUCH_SQL: Final = "UPDATE api_key SET last_used_at = now() WHERE id = $1"

# No U+0000: PostgreSQL's text cannot hold it.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]


class ApiKeyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new key: a name to recognise it by, and optionally fewer days than the maximum."""

    name: Name
    expires_in_days: Annotated[int, msgspec.Meta(ge=1)] | None = None


class ApiKeyOut(msgspec.Struct, frozen=True):
    """A key as listings show it: never its secret."""

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedApiKey(msgspec.Struct, frozen=True):
    """The answer to a create: the key in full, this once."""

    key: str
    api_key: ApiKeyOut


def key_hash(key: str) -> bytes | None:
    """The stored hash of a well-formed key; None for anything that cannot be one."""
    if len(key) != 55 or KEY_SHAPE.fullmatch(key) is None:
        return None
    return hashlib.sha256(key.encode()).digest()


async def create(
    conn: Connection, user_id: uuid.UUID, data: ApiKeyIn, *, max_days: int, max_keys: int
) -> CreatedApiKey:
    """Make a key for the user (409 `too_many_api_keys` beyond `max_keys` live ones)."""
    days = min(data.expires_in_days or max_days, max_days)
    async with conn.transaction():
        # Serialise this user's key creations so the count stays exact.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", str(user_id))
        if await conn.fetchval(LIVE_COUNT_SQL, user_id) >= max_keys:
            raise gateway_error(
                409,
                GatewayErrorCode.TOO_MANY_API_KEYS,
                f"At most {max_keys} live API keys per user; revoke one first.",
            )
        prefix = f"{KEY_PREFIX}{secrets.token_hex(4)}"
        key = f"{prefix}_{secrets.token_urlsafe(32)}"
        expires_at = datetime.now().astimezone() + timedelta(days=days)
        row = await conn.fetchrow(
            INSERT_SQL, uuid.uuid4(), user_id, data.name, prefix, key_hash(key), expires_at
        )
    assert row is not None
    return CreatedApiKey(key=key, api_key=ApiKeyOut(**dict(row)))


async def list_keys(conn: Connection, user_id: uuid.UUID) -> list[ApiKeyOut]:
    """The user's keys, newest first, revoked and expired ones included."""
    return [ApiKeyOut(**dict(row)) for row in await conn.fetch(LIST_SQL, user_id)]


async def revoke(conn: Connection, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKeyOut:
    """Revoke one of the user's keys (idempotent); 404 for anyone else's."""
    async with conn.transaction():
        row = await conn.fetchrow(REVOKE_SQL, key_id, user_id)
        if row is None:
            raise gateway_error(
                404, GatewayErrorCode.API_KEY_NOT_FOUND, "The API key does not exist."
            )
        await notifications.notify(conn, [notifications.API_KEYS])
    return ApiKeyOut(**dict(row))


async def touch(conn: Connection, key_id: uuid.UUID) -> None:
    """Record that the key was just used."""
    await conn.execute(TOUCH_SQL, key_id)

"""Opaque refresh tokens in families: issue at login, rotate on refresh, revoke on logout.

A login starts a *family*. Each refresh uses up the presented token and issues the next one
in the same family; the family ends at its absolute lifetime however often it is refreshed.
Presenting a token that was already used (a stolen copy, or the legitimate client after the
thief refreshed first) revokes the whole family: both parties must log in again.

Only the SHA-256 of a token is stored; the token itself exists only in the client's hands.
The functions take an asyncpg connection, so a service can run them in its own transaction.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, NamedTuple

import asyncpg
import msgspec

from authkit.error_codes import AuthError, AuthErrorCode
from servicekit.database import Connection

__all__ = [
    "DEFAULT_FAMILY_LIFETIME",
    "DEFAULT_POLICY",
    "DEFAULT_REFRESH_LIFETIME",
    "REFRESH_TOKEN_PREFIX",
    "Connection",
    "RefreshTokenPolicy",
    "RefreshTokenRecord",
    "RevokeReason",
    "RotatedRefreshToken",
    "issue_refresh_token",
    "purge_expired_refresh_tokens",
    "revoke_all_for_user",
    "revoke_all_for_users",
    "revoke_family",
    "revoke_refresh_token",
    "rotate_refresh_token",
]

REFRESH_TOKEN_PREFIX: Final = "rt_"  # noqa: S105 (a prefix, not a token)
_TOKEN_BYTES: Final = 32
# The prefix, then urlsafe base64 of 32 bytes without padding.
_TOKEN_SHAPE: Final = re.compile(re.escape(REFRESH_TOKEN_PREFIX) + r"[A-Za-z0-9_-]{43}")
_MAX_USER_AGENT: Final = 512
_MAX_IP: Final = 64

DEFAULT_REFRESH_LIFETIME: Final = timedelta(days=14)
DEFAULT_FAMILY_LIFETIME: Final = timedelta(days=30)

# A plain connection, or one acquired from the service's pool.

ISSUE_SQL: Final = """
INSERT INTO auth_refresh_token
    (id, family_id, user_id, token_hash, expires_at, family_expires_at, user_agent, ip,
     session_version)
VALUES ($1, $1, $2, $3, now() + $4::interval, now() + $5::interval, $6, $7, $8)
RETURNING id, family_id, user_id, created_at, expires_at, family_expires_at,
          used_at, revoked_at, revoked_reason, user_agent, ip, session_version
"""
SUCCESSOR_SQL: Final = """
INSERT INTO auth_refresh_token
    (id, family_id, user_id, token_hash, expires_at, family_expires_at, user_agent, ip,
     session_version)
VALUES ($1, $2, $3, $4, LEAST(now() + $5::interval, $6), $6, $7, $8, $9)
"""
LOCK_SQL: Final = """
SELECT id, family_id, user_id, family_expires_at, used_at, revoked_at, session_version,
       expires_at <= now() AS expired
FROM auth_refresh_token WHERE token_hash = $1 FOR UPDATE
"""
MARK_USED_SQL: Final = "UPDATE auth_refresh_token SET used_at = now() WHERE id = $1"
FAMILY_OF_SQL: Final = "SELECT family_id, user_id FROM auth_refresh_token WHERE token_hash = $1"
REVOKE_FAMILY_SQL: Final = """
UPDATE auth_refresh_token SET revoked_at = now(), revoked_reason = $2
WHERE family_id = $1 AND revoked_at IS NULL
"""
REVOKE_USERS_SQL: Final = """
UPDATE auth_refresh_token SET revoked_at = now(), revoked_reason = $2
WHERE user_id = ANY($1::uuid[]) AND revoked_at IS NULL
"""
PURGE_SQL: Final = "DELETE FROM auth_refresh_token WHERE family_expires_at < now() - $1::interval"


class RevokeReason(StrEnum):
    """Why a family was revoked (stored in ``revoked_reason``)."""

    LOGOUT = "logout"
    REUSE = "reuse"
    LOGOUT_EVERYWHERE = "logout_everywhere"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105
    DEACTIVATED = "deactivated"
    # A refresh the account no longer allows: its session version moved on since the login
    # (a missed revocation caught late), or the account is gone or inactive.
    STALE_SESSION = "stale_session"


class RefreshTokenPolicy(msgspec.Struct, frozen=True):
    """How long one refresh token lives, and how long its family may be refreshed at most."""

    lifetime: timedelta = DEFAULT_REFRESH_LIFETIME
    family_lifetime: timedelta = DEFAULT_FAMILY_LIFETIME

    def __post_init__(self) -> None:
        if self.lifetime <= timedelta(0) or self.family_lifetime <= timedelta(0):
            raise ValueError("refresh token lifetimes must be positive")


DEFAULT_POLICY: Final = RefreshTokenPolicy()


class RefreshTokenRecord(msgspec.Struct, frozen=True):
    """One stored refresh token, without its hash."""

    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    family_expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    user_agent: str | None
    ip: str | None
    session_version: int | None


class RotatedRefreshToken(NamedTuple):
    """The outcome of a refresh: whose token it was, and the token that replaces it.

    ``session_version`` is the user's session version when the family was started (None
    for a family from before authkit recorded it): a caller compares it with the user's
    current one and revokes the family (`revoke_family`) when they differ.
    """

    user_id: uuid.UUID
    token: str
    family_id: uuid.UUID
    session_version: int | None

    def __repr__(self) -> str:
        # The token is a credential: keep it out of reprs that end up in logs and tracebacks.
        return (
            f"RotatedRefreshToken(user_id={self.user_id!r}, token=<hidden>, "
            f"family_id={self.family_id!r}, session_version={self.session_version!r})"
        )


async def issue_refresh_token(
    conn: Connection,
    user_id: uuid.UUID,
    *,
    session_version: int | None = None,
    policy: RefreshTokenPolicy = DEFAULT_POLICY,
    user_agent: str | None = None,
    ip: str | None = None,
) -> tuple[str, RefreshTokenRecord]:
    """Start a new family for ``user_id`` (a login); return the opaque token and its record.

    ``session_version`` is the user's current one; every token of the family carries it, so
    a refresh after the version moved on (password change, deactivation) can be refused.
    """
    token = _new_token()
    row = await conn.fetchrow(
        ISSUE_SQL,
        uuid.uuid4(),
        user_id,
        _digest(token),
        min(policy.lifetime, policy.family_lifetime),
        policy.family_lifetime,
        _clip(user_agent, _MAX_USER_AGENT),
        _clip(ip, _MAX_IP),
        session_version,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return token, RefreshTokenRecord(**dict(row))


async def rotate_refresh_token(
    conn: Connection,
    token: str,
    *,
    policy: RefreshTokenPolicy = DEFAULT_POLICY,
    user_agent: str | None = None,
    ip: str | None = None,
) -> RotatedRefreshToken:
    """Use up ``token`` and return its user and the next token of its family.

    Raises `AuthError`: ``token_invalid`` (unknown or revoked), ``token_expired``, or
    ``refresh_token_reused`` after revoking the whole family. The revocation is written
    before the error is raised: inside a transaction of your own, commit it anyway.
    """
    digest = _digest_if_well_formed(token)
    if digest is None:
        raise AuthError(AuthErrorCode.TOKEN_INVALID)
    # The row lock serialises concurrent refreshes of one token: the second one sees it used.
    async with conn.transaction():
        row = await conn.fetchrow(LOCK_SQL, digest)
        failure = _refusal(row)
        if failure is None:
            assert row is not None
            return await _successor(conn, row, policy, user_agent, ip)
        if failure is AuthErrorCode.REFRESH_TOKEN_REUSED:
            assert row is not None
            await conn.execute(REVOKE_FAMILY_SQL, row["family_id"], RevokeReason.REUSE)
    # Raised after the block, so the transaction commits the family's revocation.
    raise AuthError(failure)


async def revoke_family(
    conn: Connection, family_id: uuid.UUID, *, reason: str = RevokeReason.LOGOUT
) -> int:
    """Revoke every live token of a family; return how many were revoked."""
    return _count(await conn.execute(REVOKE_FAMILY_SQL, family_id, reason))


async def revoke_refresh_token(
    conn: Connection, token: str, *, reason: str = RevokeReason.LOGOUT
) -> uuid.UUID | None:
    """Log out: revoke the family of ``token``; return its user, or None for an unknown token."""
    digest = _digest_if_well_formed(token)
    if digest is None:
        return None
    row = await conn.fetchrow(FAMILY_OF_SQL, digest)
    if row is None:
        return None
    await revoke_family(conn, row["family_id"], reason=reason)
    user_id: uuid.UUID = row["user_id"]
    return user_id


async def revoke_all_for_user(
    conn: Connection, user_id: uuid.UUID, *, reason: str = RevokeReason.LOGOUT_EVERYWHERE
) -> int:
    """End every session of a user (logout everywhere, password change, deactivation)."""
    return await revoke_all_for_users(conn, [user_id], reason=reason)


async def revoke_all_for_users(
    conn: Connection, user_ids: Sequence[uuid.UUID], *, reason: str
) -> int:
    """End every session of each of these users (e.g. a sync batch's password changes)."""
    return _count(await conn.execute(REVOKE_USERS_SQL, list(user_ids), reason))


async def purge_expired_refresh_tokens(
    conn: Connection, *, older_than: timedelta = timedelta(days=1)
) -> int:
    """Delete families past their absolute lifetime (by ``older_than``); return the row count."""
    return _count(await conn.execute(PURGE_SQL, older_than))


def _refusal(row: asyncpg.Record | None) -> AuthErrorCode | None:
    """Why a locked token may not be rotated, or None when it may."""
    if row is None or row["revoked_at"] is not None:
        return AuthErrorCode.TOKEN_INVALID
    # Checked before expiry: an old copy of a rotated token still means the family leaked.
    if row["used_at"] is not None:
        return AuthErrorCode.REFRESH_TOKEN_REUSED
    if row["expired"]:
        return AuthErrorCode.TOKEN_EXPIRED
    return None


async def _successor(
    conn: Connection,
    row: asyncpg.Record,
    policy: RefreshTokenPolicy,
    user_agent: str | None,
    ip: str | None,
) -> RotatedRefreshToken:
    await conn.execute(MARK_USED_SQL, row["id"])
    token = _new_token()
    await conn.execute(
        SUCCESSOR_SQL,
        uuid.uuid4(),
        row["family_id"],
        row["user_id"],
        _digest(token),
        policy.lifetime,
        row["family_expires_at"],
        _clip(user_agent, _MAX_USER_AGENT),
        _clip(ip, _MAX_IP),
        row["session_version"],
    )
    return RotatedRefreshToken(
        user_id=row["user_id"],
        token=token,
        family_id=row["family_id"],
        session_version=row["session_version"],
    )


def _new_token() -> str:
    raw = base64.urlsafe_b64encode(secrets.token_bytes(_TOKEN_BYTES)).rstrip(b"=")
    return REFRESH_TOKEN_PREFIX + raw.decode()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _digest_if_well_formed(token: str) -> bytes | None:
    # Anything that cannot be one of our tokens is refused without a database round trip.
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    return _digest(token)


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


def _count(status: str) -> int:
    """The row count of an asyncpg command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])

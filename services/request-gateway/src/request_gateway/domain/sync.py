"""Users and profile types from the authority (the processor), applied by version.

Only a strictly greater version replaces a stored copy. A user who is deactivated, or
removed by a snapshot, is locked out at once: refresh tokens and API keys revoked, queued
requests cancelled (never exported), and every server process told to forget them, which
rejects their access tokens on the next request. A new password hash ends every session
(refresh tokens revoked, session version moved on) but keeps the API keys, unless the
record asks for them to be revoked (``revoke_api_keys``, an admin's reset).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from typing import Final, TypeVar

import msgspec

from airlink.records import ProfileType, User, UserSnapshot
from authkit.sessions import RevokeReason, revoke_all_for_users
from request_gateway.domain.requests import cancel_queued_of_users
from request_gateway.identity import notifications
from servicekit.database import Connection

R = TypeVar("R", User, ProfileType)

UPSERT_PROFILE_TYPES_SQL: Final = """
    INSERT INTO profile_type AS p (name, requests_per_minute, burst, allowed_request_types,
                                   max_payload_bytes, max_pending_requests, version, synced_at)
    SELECT r.*, now() FROM jsonb_to_recordset($1::jsonb) AS r (
        name varchar, requests_per_minute int, burst int, allowed_request_types varchar[],
        max_payload_bytes int, max_pending_requests int, version int)
    ON CONFLICT (name) DO UPDATE SET
        requests_per_minute = excluded.requests_per_minute, burst = excluded.burst,
        allowed_request_types = excluded.allowed_request_types,
        max_payload_bytes = excluded.max_payload_bytes,
        max_pending_requests = excluded.max_pending_requests,
        version = excluded.version, synced_at = now()
    WHERE p.version < excluded.version
    RETURNING name
"""
# The session version moves when the password or the active flag does: access tokens
# issued before such a change stop working.
UPSERT_USERS_SQL: Final = """
    WITH incoming AS (
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS r (
            id uuid, username varchar, password_hash text, roles varchar[],
            profile_type varchar, active bool, must_change_password bool, version int)
    ), previous AS (
        SELECT u.id, u.active, u.password_hash FROM app_user u JOIN incoming USING (id)
    )
    INSERT INTO app_user AS u (id, username, password_hash, roles, profile_type, active,
                               must_change_password, version, synced_at)
    SELECT incoming.*, now() FROM incoming
    ON CONFLICT (id) DO UPDATE SET
        username = excluded.username, password_hash = excluded.password_hash,
        roles = excluded.roles, profile_type = excluded.profile_type, active = excluded.active,
        must_change_password = excluded.must_change_password, version = excluded.version,
        synced_at = now(),
        session_version = u.session_version + CASE
            WHEN u.password_hash <> excluded.password_hash OR u.active <> excluded.active
            THEN 1 ELSE 0 END
    WHERE u.version < excluded.version
    RETURNING u.id, u.active, u.password_hash,
              (SELECT previous.active FROM previous WHERE previous.id = u.id) AS was_active,
              (SELECT previous.password_hash <> u.password_hash
               FROM previous WHERE previous.id = u.id) AS password_changed
"""
DELETE_USERS_SQL: Final = """
    DELETE FROM app_user WHERE NOT (id = ANY($1)) AND synced_at < $2 RETURNING id
"""
DELETE_PROFILE_TYPES_SQL: Final = """
    DELETE FROM profile_type WHERE NOT (name = ANY($1)) AND synced_at < $2 RETURNING name
"""
REVOKE_API_KEYS_SQL: Final = """
    UPDATE api_key SET revoked_at = now(), revoked_reason = $2
    WHERE user_id = ANY($1) AND revoked_at IS NULL
"""


ADMIN_REVOKED: Final = "revoked_by_admin"
"""An API key's ``revoked_reason`` when the processor's admin revoked the user's keys."""


class SyncReport(msgspec.Struct):
    """What one chunk of sync records changed."""

    users: int = 0
    profile_types: int = 0
    locked_out: list[uuid.UUID] = msgspec.field(default_factory=list)
    removed_users: int = 0
    removed_profile_types: int = 0


async def apply_profile_types(conn: Connection, records: Sequence[ProfileType]) -> list[str]:
    """Upsert profile types by version; return the names that changed."""
    newest = _newest(records, key=lambda record: record.name)
    rows = await conn.fetch(UPSERT_PROFILE_TYPES_SQL, msgspec.json.encode(newest).decode())
    names = [row["name"] for row in rows]
    await notifications.notify(conn, [notifications.PROFILE_PREFIX + name for name in names])
    return names


async def apply_users(conn: Connection, records: Sequence[User], report: SyncReport) -> None:
    """Upsert users by version; lock out those who became inactive."""
    newest = _newest(records, key=lambda record: record.id)
    rows = await conn.fetch(UPSERT_USERS_SQL, msgspec.json.encode(newest).decode())
    report.users += len(rows)
    await notifications.notify(conn, [notifications.USER_PREFIX + str(row["id"]) for row in rows])
    deactivated = [
        row["id"] for row in rows if not row["active"] and row["was_active"] is not False
    ]
    if deactivated:
        await lock_out(conn, deactivated, RevokeReason.DEACTIVATED)
        report.locked_out.extend(deactivated)
    # A new password ends every session here too, in the transaction that applies it.
    password_changed = [row["id"] for row in rows if row["password_changed"]]
    if password_changed:
        await revoke_all_for_users(conn, password_changed, reason=RevokeReason.PASSWORD_CHANGED)
    # An event, not a state: read from every record, also one a newer record supersedes
    # (a batch is applied once, so a revocation is never repeated by a resend).
    revoking = list(dict.fromkeys(record.id for record in records if record.revoke_api_keys))
    if revoking:
        await revoke_api_keys(conn, revoking, ADMIN_REVOKED)


async def apply_snapshot(conn: Connection, snapshot: UserSnapshot, report: SyncReport) -> None:
    """Remove users and profile types the authority no longer has (older than the snapshot)."""
    removed = [
        row["id"]
        for row in await conn.fetch(DELETE_USERS_SQL, snapshot.user_ids, snapshot.taken_at)
    ]
    names = await conn.fetch(DELETE_PROFILE_TYPES_SQL, snapshot.profile_types, snapshot.taken_at)
    if removed:
        await lock_out(conn, removed, RevokeReason.DEACTIVATED)
        report.locked_out.extend(removed)
    report.removed_users += len(removed)
    report.removed_profile_types += len(names)
    if removed or names:
        await notifications.notify(conn, [notifications.ALL])


async def lock_out(conn: Connection, user_ids: list[uuid.UUID], reason: str) -> None:
    """Revoke the users' refresh tokens and API keys and cancel their queued requests."""
    await revoke_all_for_users(conn, user_ids, reason=reason)
    await revoke_api_keys(conn, user_ids, reason)
    await cancel_queued_of_users(conn, user_ids)
    await notifications.notify(
        conn,
        [notifications.API_KEYS, *(notifications.USER_PREFIX + str(u) for u in user_ids)],
    )


async def revoke_api_keys(conn: Connection, user_ids: list[uuid.UUID], reason: str) -> None:
    """Revoke every live API key of these users; every server process forgets them."""
    await conn.execute(REVOKE_API_KEYS_SQL, user_ids, reason)
    await notifications.notify(conn, [notifications.API_KEYS])


def _newest(records: Sequence[R], key: Callable[[R], Hashable]) -> list[R]:
    """One record per key, the highest version (a statement may upsert a row only once)."""
    best: dict[Hashable, R] = {}
    for record in records:
        held = best.get(key(record))
        if held is None or record.version > held.version:
            best[key(record)] = record
    return list(best.values())

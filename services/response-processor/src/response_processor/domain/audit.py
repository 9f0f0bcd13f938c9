"""The processor's audit actions; entries are written by `servicekit.audit`.

Re-exports `Actor`, `SYSTEM` and `record`, so the processor's code says
``audit.record(conn, actor, audit.Action.USER_CREATED, ...)`` with one import.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import msgspec

from servicekit.audit import SYSTEM, Actor, record
from servicekit.database import Connection

__all__ = ["SYSTEM", "Action", "Actor", "AuditEntryOut", "list_audit_entries", "record"]

AUDIT_SQL: Final = """
    SELECT id, at, actor_id, actor, action, target, outcome, client_address, details
    FROM audit_log
    WHERE ($1::text IS NULL OR action = $1) AND ($2::bigint IS NULL OR id < $2)
      AND ($3::text IS NULL OR actor = $3 OR target = 'user:' || $3)
      AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)
    ORDER BY id DESC LIMIT $6
"""


class AuditEntryOut(msgspec.Struct, frozen=True):
    """One audit entry."""

    id: int
    at: datetime
    actor_id: uuid.UUID | None
    actor: str | None
    action: str
    target: str | None
    outcome: str
    client_address: str | None
    details: Any


async def list_audit_entries(
    conn: Connection,
    *,
    action: str | None = None,
    username: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntryOut]:
    """Entries newest first, filtered (``username``: done by or to that user); page with
    the last id as ``before_id``."""
    rows = await conn.fetch(AUDIT_SQL, action, before_id, username, since, until, limit)
    return [
        AuditEntryOut(**{**dict(row), "details": msgspec.json.decode(row["details"])})
        for row in rows
    ]


class Action(StrEnum):
    """Every audited action, one stable name each."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name, not a password
    ADMIN_CREATED = "admin_created"
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"
    PROFILE_TYPE_CREATED = "profile_type_created"
    PROFILE_TYPE_UPDATED = "profile_type_updated"
    PROFILE_TYPE_DELETED = "profile_type_deleted"
    PROFILE_TYPES_SEEDED = "profile_types_seeded"
    DEAD_LETTER_RETRIED = "dead_letter_retried"
    DOCUMENTS_LOADED = "documents_loaded"
    DOCUMENTS_DELETED = "documents_deleted"
    ADMIN_ACCESS_REFUSED = "admin_access_refused"
    BATCH_IMPORTED = "batch_imported"
    BATCH_EXPORTED = "batch_exported"
    BATCH_QUARANTINED = "batch_quarantined"
    USERS_SNAPSHOT = "users_snapshot"

"""The processor's audit actions, and reading the log; entries are written by `servicekit.audit`.

Re-exports `Actor`, `SYSTEM` and `record`, so the processor's code says
``audit.record(conn, actor, audit.Action.USER_CREATED, ...)`` with one import. The link
audits its own batches (`airlink.schema.AuditAction`), in the same `audit_log`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import msgspec

from servicekit import paging
from servicekit.audit import SYSTEM, Actor, record
from servicekit.database import Connection
from servicekit.fields import BigInt

__all__ = [
    "SYSTEM",
    "Action",
    "Actor",
    "AuditEntryOut",
    "AuditPage",
    "list_entries",
    "record",
]

LIST_SQL: Final = """
    SELECT id, at, actor_id, actor, action, target, outcome, client_address, details
    FROM audit_log
    WHERE ($1::text IS NULL OR action = $1) AND ($2::bigint IS NULL OR id < $2)
      AND ($3::text IS NULL OR actor = $3 OR target = 'user:' || $3)
      AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)
    ORDER BY id DESC LIMIT $6
"""


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
    USERS_SNAPSHOT = "users_snapshot"


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


AuditPage = paging.Page[AuditEntryOut]
"""A page of the audit log, newest first."""
AuditCursor = tuple[BigInt]
"""A listing's position: the id of the last entry seen."""


async def list_entries(
    conn: Connection,
    *,
    action: str | None,
    cursor: str | None,
    limit: int,
    username: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditPage:
    """Entries newest first, optionally of one action, done by or to one user (``username``),
    and in ``[since, until)``."""
    (before_id,) = paging.decode_cursor(cursor, AuditCursor) if cursor else (None,)
    rows = await conn.fetch(LIST_SQL, action, before_id, username, since, until, limit + 1)
    return paging.page_of(rows, limit, _entry, lambda entry: (entry.id,))


def _entry(row: Any) -> AuditEntryOut:
    return AuditEntryOut(**{**dict(row), "details": msgspec.json.decode(row["details"])})

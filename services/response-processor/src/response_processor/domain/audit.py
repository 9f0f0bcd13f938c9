"""The append-only audit log: who did what, from where, with what outcome."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import msgspec

from servicekit.database import Connection

INSERT_SQL: Final = """
    INSERT INTO audit_log (actor_id, actor, action, target, outcome, client_address, details)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
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
    BATCH_IMPORTED = "batch_imported"
    BATCH_EXPORTED = "batch_exported"
    BATCH_QUARANTINED = "batch_quarantined"
    USERS_SNAPSHOT = "users_snapshot"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a user, or the system itself (actor_id None)."""

    id: uuid.UUID | None
    name: str | None
    address: str | None = None


SYSTEM: Final = Actor(None, "system")


async def record(
    connection: Connection,
    actor: Actor,
    action: Action,
    *,
    target: str | None = None,
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry; call it inside the transaction of the change it describes."""
    await connection.execute(
        INSERT_SQL,
        actor.id,
        actor.name,
        str(action),
        target,
        outcome,
        actor.address,
        msgspec.json.encode(dict(details or {})).decode(),
    )

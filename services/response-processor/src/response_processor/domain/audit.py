"""The processor's audit actions; entries are written by `servicekit.audit`.

Re-exports `Actor`, `SYSTEM` and `record`, so the processor's code says
``audit.record(conn, actor, audit.Action.USER_CREATED, ...)`` with one import. The link
audits its own batches (`airlink.schema.AuditAction`), in the same `audit_log`.
"""

from __future__ import annotations

from enum import StrEnum

from servicekit.audit import SYSTEM, Actor, record

__all__ = ["SYSTEM", "Action", "Actor", "record"]


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

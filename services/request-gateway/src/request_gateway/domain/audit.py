"""What the gateway audits; `servicekit.audit` writes the entries.

The link audits its own batches (`airlink.schema.AuditAction`), in the same `audit_log`.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """Every audited action of the gateway, one stable name each."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    EXPORT_REQUESTED = "export_requested"
    USERS_SYNCED = "users_synced"
    USERS_LOCKED_OUT = "users_locked_out"

"""The gateway's tables. The link protocol's and authkit's tables live in their own apps."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigSerial,
    Boolean,
    Bytea,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

# These classes are the schema (Piccolo writes the migrations from them); the service reads
# and writes with SQL on its own asyncpg pool.


class ProfileType(Table, tablename="profile_type"):
    """A synced copy of the processor's profile type: what a user may submit, how fast."""

    name = Varchar(length=64, primary_key=True)
    requests_per_minute = Integer()
    burst = Integer()
    allowed_request_types = Array(Varchar(length=100))
    max_payload_bytes = Integer()
    max_pending_requests = Integer()
    version = Integer()
    synced_at = Timestamptz(default=TimestamptzNow())


class AppUser(Table, tablename="app_user"):
    """A synced copy of a processor user (no foreign key to its profile type: records of one
    batch may name a profile type that a later record or batch brings)."""

    id = UUID(primary_key=True)
    username = Varchar(length=64)
    password_hash = Text(secret=True)
    roles = Array(Varchar(length=16))
    profile_type = Varchar(length=64)
    active = Boolean()
    must_change_password = Boolean()
    version = Integer()  # the authority's sync version
    # Bumped here when the password or the active flag changes: older access tokens die.
    session_version = Integer(default=1)
    synced_at = Timestamptz(default=TimestamptzNow())
    last_login_at = Timestamptz(null=True, default=None)


class ApiKey(Table, tablename="api_key"):
    """A user's API key: only its SHA-256 is kept; the prefix identifies it in listings."""

    id = UUID(primary_key=True)
    user_id = UUID(index=True)
    name = Varchar(length=100)
    prefix = Varchar(length=16)
    key_hash = Bytea(secret=True, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    revoked_reason = Varchar(length=32, null=True, default=None)
    last_used_at = Timestamptz(null=True, default=None)


class Request(Table, tablename="request"):
    """A user's request and, once the processor answered, its outcome."""

    id = UUID(primary_key=True)
    user_id = UUID()
    type = Varchar(length=100)
    payload = JSONB()
    status = Varchar(length=16, default="queued")
    idempotency_key = Varchar(length=200, null=True, default=None)
    trace_id = Varchar(length=128)
    result = JSONB(null=True, default=None)
    error_code = Varchar(length=64, null=True, default=None)
    error_message = Text(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    exported_at = Timestamptz(null=True, default=None)
    cancel_requested_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)  # the processor's, from its response


class UserQuota(Table, tablename="user_quota"):
    """How many requests of a user are pending (queued, exported or delivered), kept exact
    by the submit function and a trigger on request status changes."""

    user_id = UUID(primary_key=True)
    pending = Integer(default=0)


class AuditEntry(Table, tablename="audit_log"):
    """Append-only record of security-relevant events (a trigger refuses changes)."""

    id = BigSerial(primary_key=True)
    at = Timestamptz(default=TimestamptzNow(), index=True)
    actor_id = UUID(null=True, default=None)
    actor = Varchar(length=64, null=True, default=None)
    action = Varchar(length=64, index=True)
    target = Varchar(length=200, null=True, default=None)
    outcome = Varchar(length=16, default="ok")
    client_address = Varchar(length=64, null=True, default=None)
    details = JSONB(default={})

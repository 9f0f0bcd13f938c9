"""The processor's tables. The link protocol's and authkit's tables live in their own apps."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigSerial,
    Boolean,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

# These classes are the schema (Piccolo writes the migrations from them); the service reads
# and writes with SQL on its own asyncpg pool, which bulk paths need anyway.


class ProfileType(Table, tablename="profile_type"):
    """What a user may submit and how fast: synced to the gateway."""

    name = Varchar(length=64, primary_key=True)
    requests_per_minute = Integer()
    burst = Integer()
    allowed_request_types = Array(Varchar(length=100))
    max_payload_bytes = Integer()
    max_pending_requests = Integer()
    version = Integer(default=1)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class AppUser(Table, tablename="app_user"):
    """A user; the processor is the authority, the gateway holds synced copies."""

    id = UUID(primary_key=True)
    username = Varchar(length=64, unique=True)
    password_hash = Text(secret=True)
    roles = Array(Varchar(length=16))
    profile_type = ForeignKey(ProfileType, null=False)
    active = Boolean(default=True)
    must_change_password = Boolean(default=False)
    # Bumped by a password change or deactivation: access tokens carrying an older one die.
    session_version = Integer(default=1)
    version = Integer(default=1)  # sync version: the gateway keeps only the newest
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    last_login_at = Timestamptz(null=True, default=None)


class Request(Table, tablename="request"):
    """A request imported from the gateway, and its outcome."""

    id = UUID(primary_key=True)
    user_id = UUID()  # no foreign key: an unknown user is answered, not refused
    type = Varchar(length=100)
    payload = JSONB()
    status = Varchar(length=16, default="received")
    attempts = Integer(default=0)
    result = JSONB(null=True, default=None)
    error_code = Varchar(length=64, null=True, default=None)
    error_message = Text(null=True, default=None)
    trace_id = Varchar(length=64)
    cancel_requested = Boolean(default=False)
    source_batch_id = UUID(null=True, default=None)
    created_at = Timestamptz()  # when the user submitted it, on the gateway
    received_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)


class RequestCancel(Table, tablename="request_cancel"):
    """A cancel from the gateway, kept even when it arrives before its request does."""

    request_id = UUID(primary_key=True)
    user_id = UUID()
    requested_at = Timestamptz()
    received_at = Timestamptz(default=TimestamptzNow())


class DeadLetter(Table, tablename="dead_letter"):
    """A request that failed after its last try, for an operator to inspect and retry."""

    id = BigSerial(primary_key=True)
    request = ForeignKey(Request, null=False, index=True)
    error_code = Varchar(length=64)
    error_message = Text()
    attempts = Integer()
    created_at = Timestamptz(default=TimestamptzNow())
    retried_at = Timestamptz(null=True, default=None)
    retried_by = UUID(null=True, default=None)


class Document(Table, tablename="document"):
    """A searchable document; its tsvector column and GIN index are added by raw SQL."""

    id = UUID(primary_key=True)
    title = Text()
    body = Text()
    created_at = Timestamptz(default=TimestamptzNow())


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


class SeedApplied(Table, tablename="seed_applied"):
    """Seed entries applied once, so an operator's later edit or deletion is never undone."""

    id = BigSerial(primary_key=True)
    kind = Varchar(length=32)
    name = Varchar(length=100)
    applied_at = Timestamptz(default=TimestamptzNow())

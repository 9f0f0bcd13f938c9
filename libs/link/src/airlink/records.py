"""The record kinds that cross the link: one tagged union per direction (docs/link-protocol.md).

These structs are the schema of the link. The importer decodes every record line into its
direction's union, so a record that does not match its kind here rejects the whole batch
(`record_invalid`); the exporter checks each record against the same types before it is
queued (`airlink.outbox.enqueue`), so a side never sends what its peer would refuse.

Unknown fields are ignored rather than refused, so that a field added in a later release
does not quarantine batches while the two sides are upgraded one after the other.
"""

from __future__ import annotations

import typing
import uuid
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import msgspec

from batchformat.models import Seq, Timestamp

ACK_KIND: Final = "ack"

# Fields of every request and response carry length limits rather than patterns: msgspec
# checks a pattern with a regular expression search per value, which doubles the cost of
# decoding (and of checking at enqueue) a 100,000-record batch.
RequestType = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
"""A handler name such as `echo` or `documents.search`."""

TraceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
"""The request id servicekit binds to log lines (`X-Request-ID`), carried across the link."""

Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ProfileTypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PasswordHash = Annotated[str, msgspec.Meta(pattern=r"^\$argon2id\$", max_length=512)]
Role = Literal["user", "operator", "admin"]
ResponseStatus = Literal["completed", "failed", "cancelled", "rejected"]
ErrorCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
Version = Annotated[int, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class Ack(msgspec.Struct, tag_field="kind", tag=ACK_KIND, frozen=True, gc=False):
    """The receiver's "I have applied your batch", sent for every batch, in both directions."""

    batch_id: uuid.UUID
    seq: Seq


class Request(msgspec.Struct, tag_field="kind", tag="request", frozen=True, gc=False):
    """A user's request, to be run once by the processor."""

    id: uuid.UUID
    user_id: uuid.UUID
    type: RequestType
    payload: dict[str, Any]
    created_at: Timestamp
    trace_id: TraceId


class Cancel(msgspec.Struct, tag_field="kind", tag="cancel", frozen=True, gc=False):
    """Cancel a request if its processing has not started."""

    request_id: uuid.UUID
    user_id: uuid.UUID
    requested_at: Timestamp


class RequestErrorCode(StrEnum):
    """The codes Airlock itself gives a request that did not complete; a handler's
    `HandlerError` may add its own. On the wire a plain string, as before the enum."""

    CANCELLED = "cancelled"  # the gateway cancelled it before sending it
    ACCOUNT_INACTIVE = "account_inactive"  # the gateway locked its user out before sending it
    EXPIRED = "expired"  # no answer reached the gateway within the request TTL
    USER_UNKNOWN = "user_unknown"
    USER_INACTIVE = "user_inactive"
    TYPE_NOT_ALLOWED = "type_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_PAYLOAD = "invalid_payload"
    HANDLER_TIMEOUT = "handler_timeout"
    HANDLER_FAILED = "handler_failed"


class ResponseError(msgspec.Struct, frozen=True, gc=False):
    """Why a request did not complete: a `RequestErrorCode`, or a handler's own code."""

    code: ErrorCode
    message: Annotated[str, msgspec.Meta(max_length=4096)]


class Response(msgspec.Struct, tag_field="kind", tag="response", frozen=True, gc=False):
    """The final answer to a request."""

    request_id: uuid.UUID
    status: ResponseStatus
    result: Any
    error: ResponseError | None
    finished_at: Timestamp
    trace_id: TraceId


class User(msgspec.Struct, tag_field="kind", tag="user", frozen=True, gc=False, omit_defaults=True):
    """A user as the authority has it now; only a strictly greater version replaces a copy."""

    id: uuid.UUID
    username: Username
    password_hash: PasswordHash
    roles: list[Role]
    profile_type: ProfileTypeName
    active: bool
    must_change_password: bool
    version: Version
    revoke_api_keys: bool = False
    """Set on the one record of an admin's request to revoke the user's API keys: an event
    the gateway acts on when it applies the record (optional: older batches lack it)."""


class ProfileType(msgspec.Struct, tag_field="kind", tag="profile_type", frozen=True, gc=False):
    """A profile type as the authority has it now."""

    name: ProfileTypeName
    requests_per_minute: Count
    burst: Count
    allowed_request_types: list[RequestType]
    max_payload_bytes: Count
    max_pending_requests: Count
    version: Version


class UserSnapshot(msgspec.Struct, tag_field="kind", tag="user_snapshot", frozen=True, gc=False):
    """The complete set of users and profile types: anything else (older) is deleted."""

    user_ids: list[uuid.UUID]
    profile_types: list[ProfileTypeName]
    taken_at: Timestamp


ToProcessor = Request | Cancel | Ack
"""Everything the gateway sends the processor."""

ToGateway = Response | User | ProfileType | UserSnapshot | Ack
"""Everything the processor sends the gateway."""

ProcessorBusiness = Request | Cancel
"""What the processor's handler is given: its inbound records without the link's acks."""

GatewayBusiness = Response | User | ProfileType | UserSnapshot
"""What the gateway's handler is given: its inbound records without the link's acks."""

OutboundRecord = Request | Cancel | Response | User | ProfileType | UserSnapshot
"""A record a service may queue for its peer; acks are queued by the link itself."""


def kinds_of(record_type: Any) -> list[str]:
    """The `kind` tags of a record struct or a union of them."""
    return [kind_of(member) for member in typing.get_args(record_type) or (record_type,)]


def kind_of(record: msgspec.Struct | type[msgspec.Struct]) -> str:
    """The `kind` tag of a record struct."""
    record_type = record if isinstance(record, type) else type(record)
    tag = record_type.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{record_type.__name__} is not a link record kind")
    return tag

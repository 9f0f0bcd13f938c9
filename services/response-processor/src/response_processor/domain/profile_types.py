"""Profile types: what a user may submit and how fast. Every change is synced to the gateway."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from airlink.outbox import enqueue
from airlink.records import ProfileType as ProfileTypeRecord
from airlink.records import RequestType
from response_processor.domain import audit
from response_processor.errors import ProcessorErrorCode, conflict, not_found
from servicekit.database import Connection
from servicekit.fields import NO_NUL

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Rate = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
PayloadBytes = Annotated[int, msgspec.Meta(ge=1, le=16 * 1024 * 1024)]
# PostgreSQL text cannot hold U+0000: refused here rather than as a 500 from the insert.
AllowedType = Annotated[RequestType, msgspec.Meta(pattern=NO_NUL)]
RequestTypes = Annotated[list[AllowedType], msgspec.Meta(max_length=200)]

COLUMNS: Final = (
    "name, requests_per_minute, burst, allowed_request_types, max_payload_bytes, "
    "max_pending_requests, version, created_at, updated_at"
)


class ProfileTypeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new profile type."""

    name: Name
    requests_per_minute: Rate
    burst: Rate
    allowed_request_types: RequestTypes
    max_payload_bytes: PayloadBytes
    max_pending_requests: Rate


class ProfileTypePatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fields to change; the ones left out stay as they are."""

    requests_per_minute: Rate | msgspec.UnsetType = msgspec.UNSET
    burst: Rate | msgspec.UnsetType = msgspec.UNSET
    allowed_request_types: RequestTypes | msgspec.UnsetType = msgspec.UNSET
    max_payload_bytes: PayloadBytes | msgspec.UnsetType = msgspec.UNSET
    max_pending_requests: Rate | msgspec.UnsetType = msgspec.UNSET


class ProfileTypeOut(msgspec.Struct, frozen=True):
    """A profile type as the API shows it."""

    name: str
    requests_per_minute: int
    burst: int
    allowed_request_types: list[str]
    max_payload_bytes: int
    max_pending_requests: int
    version: int
    created_at: datetime
    updated_at: datetime

    def record(self) -> ProfileTypeRecord:
        """The sync record telling the gateway about this version."""
        return ProfileTypeRecord(
            name=self.name,
            requests_per_minute=self.requests_per_minute,
            burst=self.burst,
            allowed_request_types=self.allowed_request_types,
            max_payload_bytes=self.max_payload_bytes,
            max_pending_requests=self.max_pending_requests,
            version=self.version,
        )


async def list_profile_types(conn: Connection) -> list[ProfileTypeOut]:
    """Every profile type, by name."""
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM profile_type ORDER BY name")  # noqa: S608
    return [ProfileTypeOut(**dict(row)) for row in rows]


async def get_profile_type(conn: Connection, name: str) -> ProfileTypeOut:
    """One profile type, or 404."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM profile_type WHERE name = $1",  # noqa: S608
        name,
    )
    if row is None:
        raise not_found(ProcessorErrorCode.PROFILE_TYPE_NOT_FOUND, f"profile type {name!r}")
    return ProfileTypeOut(**dict(row))


async def create_profile_type(
    conn: Connection, data: ProfileTypeIn, actor: audit.Actor
) -> ProfileTypeOut:
    """Create it, audit it and queue its sync record, in one transaction."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO profile_type (name, requests_per_minute, burst, allowed_request_types,
                                          max_payload_bytes, max_pending_requests)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING
                RETURNING {COLUMNS}""",  # noqa: S608
            *_values(msgspec.structs.asdict(data)),
        )
        if row is None:
            raise conflict(ProcessorErrorCode.PROFILE_TYPE_EXISTS, f"{data.name!r} exists")
        created = ProfileTypeOut(**dict(row))
        await _synced(conn, created, actor, audit.Action.PROFILE_TYPE_CREATED)
    return created


async def update_profile_type(
    conn: Connection, name: str, patch: ProfileTypePatch, actor: audit.Actor
) -> ProfileTypeOut:
    """Change the given fields and bump the version, so the gateway takes the new one."""
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=2))
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE profile_type SET {assignments}{", " if assignments else ""}
                    version = version + 1, updated_at = now()
                WHERE name = $1 RETURNING {COLUMNS}""",  # noqa: S608 - column names are ours
            name,
            *changes.values(),
        )
        if row is None:
            raise not_found(ProcessorErrorCode.PROFILE_TYPE_NOT_FOUND, f"profile type {name!r}")
        updated = ProfileTypeOut(**dict(row))
        await _synced(conn, updated, actor, audit.Action.PROFILE_TYPE_UPDATED, changes)
    return updated


async def _synced(
    conn: Connection,
    profile_type: ProfileTypeOut,
    actor: audit.Actor,
    action: audit.Action,
    details: dict[str, Any] | None = None,
) -> None:
    await enqueue(conn, [profile_type.record()])
    await audit.record(
        conn, actor, action, target=f"profile_type:{profile_type.name}", details=details
    )


def _values(fields: dict[str, Any]) -> list[Any]:
    return [
        fields["name"],
        fields["requests_per_minute"],
        fields["burst"],
        fields["allowed_request_types"],
        fields["max_payload_bytes"],
        fields["max_pending_requests"],
    ]

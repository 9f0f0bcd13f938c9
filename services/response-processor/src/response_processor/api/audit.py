"""`/api/v1/audit`: the audit log, newest first (admins)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import QueryParameter

from response_processor.api.context import runtime_of
from response_processor.api.guards import MANAGE
from servicekit.fields import BigIntQuery, TextQuery


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


@get("/api/v1/audit", guards=[MANAGE], tags=["audit"])
async def read_audit(
    request: Request[Any, Any, Any],
    action: TextQuery = None,
    before_id: BigIntQuery = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> list[AuditEntryOut]:
    """Entries newest first, optionally of one action; page with the last id as `before_id`."""
    async with runtime_of(request).pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, at, actor_id, actor, action, target, outcome, client_address, details
               FROM audit_log
               WHERE ($1::text IS NULL OR action = $1) AND ($2::bigint IS NULL OR id < $2)
               ORDER BY id DESC LIMIT $3""",
            action,
            before_id,
            limit,
        )
    return [
        AuditEntryOut(**{**dict(row), "details": msgspec.json.decode(row["details"])})
        for row in rows
    ]

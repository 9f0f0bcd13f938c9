"""`/api/v1/audit`: the audit log, newest first (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter

from response_processor.api.context import runtime_of
from response_processor.api.guards import MANAGE
from response_processor.domain.audit import AuditEntryOut, list_audit_entries
from servicekit.fields import BigIntQuery, TextQuery


@get("/api/v1/audit", guards=[MANAGE], tags=["audit"])
async def read_audit(
    request: Request[Any, Any, Any],
    action: TextQuery = None,
    before_id: BigIntQuery = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> list[AuditEntryOut]:
    """Entries newest first, optionally of one action; page with the last id as `before_id`."""
    async with runtime_of(request).pool.acquire() as conn:
        return await list_audit_entries(conn, action=action, before_id=before_id, limit=limit)

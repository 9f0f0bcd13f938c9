"""`/api/v1/audit`: the audit log, newest first (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter

from response_processor.api.context import runtime_of
from response_processor.api.guards import MANAGE
from response_processor.domain.audit import AuditPage, list_entries
from servicekit.fields import TextQuery
from servicekit.paging import Cursor


@get("/api/v1/audit", guards=[MANAGE], tags=["audit"])
async def read_audit(
    request: Request[Any, Any, Any],
    action: TextQuery = None,
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Entries newest first, optionally of one action; pass `next_cursor` as `cursor` for more."""
    async with runtime_of(request).pool.acquire() as conn:
        return await list_entries(conn, action=action, cursor=cursor, limit=limit)

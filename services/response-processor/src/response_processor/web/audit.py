"""The audit log: filter by action, user and time; paged, newest first (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template

from response_processor.api.context import runtime_of
from response_processor.api.guards import MANAGE
from response_processor.domain.audit import Action, AuditEntryOut, list_entries
from response_processor.web.render import render
from servicekit.fields import NO_NUL
from servicekit.paging import Cursor

PAGE_SIZE: Final = 50
Filter = Annotated[str | None, QueryParameter(max_length=64, pattern=NO_NUL)]
When = Annotated[str | None, QueryParameter(max_length=32, pattern=NO_NUL)]


@get("/audit", guards=[MANAGE])
async def audit_log(
    request: Request[Any, Any, Any],
    action: Filter = None,
    user: Filter = None,
    since: When = None,
    until: When = None,
    cursor: Cursor = None,
) -> Template:
    """A page of entries; the next page continues after the last one shown."""
    errors: dict[str, str] = {}
    since_at, until_at = _when(since, "since", errors), _when(until, "until", errors)
    entries: list[AuditEntryOut] = []
    next_cursor = None
    if not errors:
        async with runtime_of(request).pool.acquire() as conn:
            page = await list_entries(
                conn,
                action=action or None,
                username=user or None,
                since=since_at,
                until=until_at,
                cursor=cursor,
                limit=PAGE_SIZE,
            )
        entries, next_cursor = page.items, page.next_cursor
    filters = {
        "action": action or "",
        "user": user or "",
        "since": since or "",
        "until": until or "",
    }
    next_url = None
    if next_cursor is not None:
        query = urlencode({**{k: v for k, v in filters.items() if v}, "cursor": next_cursor})
        next_url = f"{request.url.path}?{query}"
    return render(
        request,
        "audit.html",
        400 if errors else 200,
        entries=entries,
        filters=filters,
        actions=[str(member) for member in Action],
        errors=errors,
        next_url=next_url,
    )


def _when(text: str | None, name: str, errors: dict[str, str]) -> datetime | None:
    """A ``datetime-local`` field (taken as UTC) or an RFC 3339 time."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        errors[name] = "Give a date and time such as 2026-12-02T15:30."
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

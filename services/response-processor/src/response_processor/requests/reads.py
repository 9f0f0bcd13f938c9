"""Requests and dead letters as operators read them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import msgspec

from response_processor.errors import ProcessorErrorCode, not_found
from response_processor.requests.status import RequestStatus
from servicekit import paging
from servicekit.database import Connection
from servicekit.fields import BigInt

COLUMNS: Final = (
    "id, user_id, type, payload, status, attempts, result, error_code, error_message, trace_id, "
    "created_at, received_at, started_at, finished_at"
)


class ErrorOut(msgspec.Struct, frozen=True):
    """Why a request did not complete."""

    code: str
    message: str


class RequestOut(msgspec.Struct, frozen=True):
    """A request as operators see it."""

    id: uuid.UUID
    user_id: uuid.UUID
    type: str
    status: RequestStatus
    payload: Any
    response: Any
    error: ErrorOut | None
    attempts: int
    trace_id: str
    created_at: datetime
    received_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


RequestPage = paging.Page[RequestOut]
"""A page of requests, newest first."""
RequestCursor = tuple[paging.Time, uuid.UUID]
"""A listing's position: `(received_at, id)` of the last request seen."""


class DeadLetterOut(msgspec.Struct, frozen=True):
    """A request that failed its last try."""

    id: int
    request_id: uuid.UUID
    type: str
    error: ErrorOut
    attempts: int
    created_at: datetime
    retried_at: datetime | None


DeadLetterPage = paging.Page[DeadLetterOut]
"""A page of dead letters, oldest first."""
DeadLetterCursor = tuple[BigInt]
"""A listing's position: the id of the last dead letter seen."""


def _request(row: Any) -> RequestOut:
    error = ErrorOut(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    return RequestOut(
        id=row["id"],
        user_id=row["user_id"],
        type=row["type"],
        status=row["status"],
        payload=msgspec.json.decode(row["payload"]),
        response=None if row["result"] is None else msgspec.json.decode(row["result"]),
        error=error,
        attempts=row["attempts"],
        trace_id=row["trace_id"],
        created_at=row["created_at"],
        received_at=row["received_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


GET_SQL: Final = f"SELECT {COLUMNS} FROM request WHERE id = $1"  # noqa: S608
# Newest first by (received_at, id): the requests of one imported batch share received_at.
LIST_SQL: Final = f"""
    SELECT {COLUMNS} FROM request
    WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR user_id = $2)
      AND ($3::timestamptz IS NULL OR (received_at, id) < ($3, $4))
    ORDER BY received_at DESC, id DESC LIMIT $5
"""  # noqa: S608 - a constant column list


async def get_request(conn: Connection, request_id: uuid.UUID) -> RequestOut:
    """One request, or 404."""
    row = await conn.fetchrow(GET_SQL, request_id)
    if row is None:
        raise not_found(ProcessorErrorCode.REQUEST_NOT_FOUND, "the request")
    return _request(row)


async def list_requests(
    conn: Connection,
    *,
    status: RequestStatus | None,
    user_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> RequestPage:
    """Newest first by `(received_at, id)`, filtered: a batch's requests share `received_at`."""
    after_at, after_id = paging.decode_cursor(cursor, RequestCursor) if cursor else (None, None)
    rows = await conn.fetch(
        LIST_SQL,
        status,
        user_id,
        after_at,
        after_id,
        limit + 1,
    )
    return paging.page_of(rows, limit, _request, lambda item: (item.received_at, item.id))


DEAD_LETTER_COLUMNS: Final = """d.id, d.request AS request_id, r.type, d.error_code,
    d.error_message, d.attempts, d.created_at, d.retried_at"""
DEAD_LETTERS_SQL: Final = f"""
    SELECT {DEAD_LETTER_COLUMNS} FROM dead_letter d JOIN request r ON r.id = d.request
    WHERE (NOT $1 OR d.retried_at IS NULL) AND ($2::bigint IS NULL OR d.id > $2)
    ORDER BY d.id LIMIT $3
"""  # noqa: S608 - a constant column list
DEAD_LETTER_SQL: Final = f"""
    SELECT {DEAD_LETTER_COLUMNS} FROM dead_letter d JOIN request r ON r.id = d.request
    WHERE d.id = $1
"""  # noqa: S608 - a constant column list


async def list_dead_letters(
    conn: Connection, *, open_only: bool, cursor: str | None, limit: int
) -> DeadLetterPage:
    """Dead letters, oldest first (open ones only by default)."""
    (after_id,) = paging.decode_cursor(cursor, DeadLetterCursor) if cursor else (None,)
    rows = await conn.fetch(
        DEAD_LETTERS_SQL,
        open_only,
        after_id,
        limit + 1,
    )
    return paging.page_of(rows, limit, _dead_letter, lambda item: (item.id,))


async def get_dead_letter(conn: Connection, dead_letter_id: int) -> DeadLetterOut | None:
    """One dead letter, retried or not; None when there is no such id."""
    row = await conn.fetchrow(DEAD_LETTER_SQL, dead_letter_id)
    return None if row is None else _dead_letter(row)


def _dead_letter(row: Any) -> DeadLetterOut:
    return DeadLetterOut(
        id=row["id"],
        request_id=row["request_id"],
        type=row["type"],
        error=ErrorOut(row["error_code"], row["error_message"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        retried_at=row["retried_at"],
    )


async def count_open_dead_letters(conn: Connection) -> int:
    """Dead letters nobody has retried yet."""
    count: int = await conn.fetchval("SELECT count(*) FROM dead_letter WHERE retried_at IS NULL")
    return count

"""Requests on the gateway: submit, read, list, cancel, and their way across the link.

Statuses: `queued` → `exported` (in an outbound batch) → `delivered` (the processor
acknowledged that batch) → `completed` | `failed` (its response); also `cancelled` and
`expired`. The first three are *pending*: they count against the profile's pending limit,
which the `submit_request` database function and a trigger keep exact.

Every change a user can see numbers the request with the next `change_seq` of its user and
notifies the `gateway_requests` channel in the same transaction (a trigger: no statement
that changes a request can forget it); `changes_since` reads them back in that order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
import msgspec

from airlink.outbox import enqueue
from airlink.records import Cancel, Request, RequestErrorCode, Response
from request_gateway.errors import GatewayErrorCode, gateway_error
from servicekit import paging
from servicekit.database import Connection

Status = Literal["queued", "exported", "delivered", "completed", "failed", "cancelled", "expired"]
PENDING: Final = ("queued", "exported", "delivered")
FINAL: Final = ("completed", "failed", "cancelled", "expired")
STATUSES: Final = (*PENDING, *FINAL)
PENDING_LIMIT_SQLSTATE: Final = "AL001"  # raised by submit_request (the migration)

COLUMNS: Final = """
    id, type, status, payload::text AS payload, result::text AS result, error_code,
    error_message, created_at, updated_at, cancel_requested_at IS NOT NULL AS cancel_requested
"""
# `same`: the row is the request asked for. jsonb compares numbers by value, where the
# decoded payloads may differ (it prints -5.2e178 in full: an int, not the float sent).
SUBMIT_SQL: Final = f"""
    SELECT {COLUMNS}, type = $3 AND payload = $4 AS same
    FROM submit_request($1, $2, $3, $4, $5, $6, $7)
"""  # noqa: S608
# A replay is looked up before the rate limit is spent; only submits with a key pay for it.
REPLAY_SQL: Final = f"""
    SELECT {COLUMNS}, type = $3 AND payload = $4::jsonb AS same
    FROM request WHERE user_id = $1 AND idempotency_key = $2
"""  # noqa: S608
GET_SQL: Final = f"SELECT {COLUMNS} FROM request WHERE id = $1 AND user_id = $2"  # noqa: S608
# request_user_change_idx: a user's changes since a number, in order.
CHANGES_SQL: Final = f"""
    SELECT {COLUMNS}, change_seq FROM request
    WHERE user_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3
"""  # noqa: S608
LATEST_CHANGE_SQL: Final = "SELECT change_seq FROM user_quota WHERE user_id = $1"
LIST_SQL: Final = f"""
    SELECT {COLUMNS} FROM request
    WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)
      AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
    ORDER BY created_at DESC, id DESC LIMIT $5
"""  # noqa: S608
CANCEL_QUEUED_SQL: Final = f"""
    UPDATE request SET status = 'cancelled', error_code = '{RequestErrorCode.CANCELLED}',
        error_message = 'Cancelled before it was sent.', updated_at = now()
    WHERE id = $1 AND user_id = $2 AND status = 'queued'
    RETURNING {COLUMNS}
"""  # noqa: S608
FORWARD_CANCEL_SQL: Final = f"""
    UPDATE request SET cancel_requested_at = now(), updated_at = now()
    WHERE id = $1 AND user_id = $2 AND status IN ('exported', 'delivered')
      AND cancel_requested_at IS NULL
    RETURNING {COLUMNS}, cancel_requested_at
"""  # noqa: S608
CANCEL_QUEUED_OF_USERS_SQL: Final = f"""
    UPDATE request SET status = 'cancelled', error_code = '{RequestErrorCode.ACCOUNT_INACTIVE}',
        error_message = 'The account was deactivated before the request was sent.',
        updated_at = now()
    WHERE user_id = ANY($1) AND status = 'queued'
"""  # noqa: S608 - the code is our own constant
# Requests of inactive or unknown users stay behind (their lock-out cancels them).
STAGE_SQL: Final = """
    WITH picked AS (
        SELECT r.id FROM request r JOIN app_user u ON u.id = r.user_id AND u.active
        WHERE r.status = 'queued' ORDER BY r.created_at LIMIT $1
        FOR UPDATE OF r SKIP LOCKED
    )
    UPDATE request r SET status = 'exported', exported_at = now(), updated_at = now()
    FROM picked WHERE r.id = picked.id
    RETURNING r.id, r.user_id, r.type, r.payload::text AS payload, r.created_at, r.trace_id
"""
DELIVERED_SQL: Final = """
    UPDATE request SET status = 'delivered', updated_at = now()
    WHERE id = ANY($1) AND status = 'exported'
"""
# A response settles a pending request; a later one (an operator's retry on the other side)
# replaces an earlier outcome. Anything else (unknown, cancelled here, expired) is ignored.
APPLY_RESPONSES_SQL: Final = """
    UPDATE request r SET
        status = CASE WHEN a.status = 'rejected' THEN 'failed' ELSE a.status END,
        result = a.result, error_code = a.error_code, error_message = a.error_message,
        finished_at = a.finished_at, updated_at = now()
    FROM jsonb_to_recordset($1::jsonb) AS a (
        request_id uuid, status text, result jsonb, error_code text, error_message text,
        finished_at timestamptz)
    WHERE r.id = a.request_id AND (
        r.status IN ('exported', 'delivered')
        OR (r.status IN ('completed', 'failed') AND r.finished_at < a.finished_at))
    RETURNING r.id
"""
EXPIRE_SQL: Final = f"""
    WITH due AS (
        SELECT id, user_id, status FROM request
        WHERE status IN ('queued', 'exported', 'delivered') AND created_at < $1
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ), expired AS (
        UPDATE request r SET status = 'expired', error_code = '{RequestErrorCode.EXPIRED}',
            error_message = 'No answer came within the request time to live.',
            updated_at = now()
        FROM due WHERE r.id = due.id
    )
    SELECT id, user_id, status FROM due
"""  # noqa: S608 - the code is our own constant

_decoder = msgspec.json.Decoder()
_payload_decoder = msgspec.json.Decoder(dict[str, Any])


class RequestError(msgspec.Struct, frozen=True):
    """DESIGN: `{"code", "message"}`."""

    code: str
    message: str


class RequestOut(msgspec.Struct, frozen=True):
    """A request as its user reads it (DESIGN's shape, plus `cancel_requested`)."""

    id: uuid.UUID
    type: str
    status: Status
    payload: dict[str, Any]
    response: Any
    error: RequestError | None
    created_at: datetime
    updated_at: datetime
    cancel_requested: bool = False


Page = paging.Page[RequestOut]
"""A page of requests, newest first."""
CursorKey = tuple[paging.Time, uuid.UUID]
"""A listing's position: `(created_at, id)` of the last request seen."""


class Submitted(msgspec.Struct, frozen=True):
    """The outcome of a submit: the request, whether this call created it, and whether an
    earlier one found by its idempotency key has the same type and payload."""

    request: RequestOut
    created: bool
    same: bool


async def submit(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    request_type: str,
    payload_json: str,
    trace_id: str,
    idempotency_key: str | None,
    max_pending: int,
) -> Submitted:
    """Store a new request (or find the one this idempotency key made) in one round trip."""
    request_id = uuid.uuid4()
    try:
        row = await conn.fetchrow(
            SUBMIT_SQL, request_id, user_id, request_type, payload_json, trace_id,
            idempotency_key, max_pending,
        )  # fmt: skip
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == PENDING_LIMIT_SQLSTATE:
            raise gateway_error(
                409,
                GatewayErrorCode.TOO_MANY_PENDING_REQUESTS,
                f"At most {max_pending} requests may be pending; wait for some to finish.",
            ) from None
        raise
    assert row is not None  # the function returns the new or the earlier request
    return Submitted(request_out(row), created=row["id"] == request_id, same=row["same"])


async def find_replay(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    request_type: str,
    payload_json: str,
    idempotency_key: str,
) -> Submitted | None:
    """The request an earlier submit with this idempotency key made, if there is one."""
    row = await conn.fetchrow(REPLAY_SQL, user_id, idempotency_key, request_type, payload_json)
    if row is None:
        return None
    return Submitted(request_out(row), created=False, same=row["same"])


async def get(conn: Connection, request_id: uuid.UUID, user_id: uuid.UUID) -> RequestOut:
    """The user's own request; 404 for another user's, as for one that does not exist."""
    row = await conn.fetchrow(GET_SQL, request_id, user_id)
    if row is None:
        raise not_found()
    return request_out(row)


class Change(msgspec.Struct, frozen=True):
    """A request as it is after its user's change number `seq`."""

    seq: int
    request: RequestOut


async def changes_since(
    conn: Connection, user_id: uuid.UUID, after: int, limit: int
) -> list[Change]:
    """The user's requests changed after number `after`, oldest change first; a request
    changed several times since shows once, as it is now."""
    rows = await conn.fetch(CHANGES_SQL, user_id, after, limit)
    return [Change(row["change_seq"], request_out(row)) for row in rows]


async def latest_change(conn: Connection, user_id: uuid.UUID) -> int:
    """The number of the user's latest change (0 before the first)."""
    latest: int | None = await conn.fetchval(LATEST_CHANGE_SQL, user_id)
    return latest or 0


async def list_page(
    conn: Connection,
    *,
    user_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page:
    """A page of requests (one user's, or everyone's for an operator), newest first."""
    after_at, after_id = paging.decode_cursor(cursor, CursorKey) if cursor else (None, None)
    rows = await conn.fetch(LIST_SQL, user_id, status, after_at, after_id, limit + 1)
    return paging.page_of(rows, limit, request_out, lambda item: (item.created_at, item.id))


async def cancel(
    conn: Connection, request_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[RequestOut, bool]:
    """Cancel: at once if still queued, else forward a cancel; (request, settled now)."""
    async with conn.transaction():
        row = await conn.fetchrow(CANCEL_QUEUED_SQL, request_id, user_id)
        if row is not None:
            return request_out(row), True
        row = await conn.fetchrow(FORWARD_CANCEL_SQL, request_id, user_id)
        if row is not None:
            cancel_record = Cancel(
                request_id=request_id, user_id=user_id, requested_at=row["cancel_requested_at"]
            )
            await enqueue(conn, [cancel_record])
            return request_out(row), False
    current = await get(conn, request_id, user_id)
    if current.status in PENDING:
        return current, False  # a cancel was already forwarded
    raise gateway_error(
        409, GatewayErrorCode.REQUEST_FINISHED, f"The request is already {current.status}."
    )


async def cancel_queued_of_users(conn: Connection, user_ids: Sequence[uuid.UUID]) -> None:
    """Cancel the users' requests not yet sent (they are locked out)."""
    await conn.execute(CANCEL_QUEUED_OF_USERS_SQL, list(user_ids))


async def stage_for_export(conn: Connection, limit: int) -> int:
    """Move up to `limit` queued requests into the link's outbox; call in a transaction."""
    rows = await conn.fetch(STAGE_SQL, limit)
    records = [
        Request(
            id=row["id"],
            user_id=row["user_id"],
            type=row["type"],
            payload=_payload_decoder.decode(row["payload"]),
            created_at=row["created_at"],
            trace_id=row["trace_id"],
        )
        for row in sorted(rows, key=lambda row: row["created_at"])
    ]
    return await enqueue(conn, records)


async def mark_delivered(conn: Connection, request_ids: Sequence[uuid.UUID]) -> None:
    """The processor acknowledged the batches of these requests: they are delivered."""
    if request_ids:
        await conn.execute(DELIVERED_SQL, list(request_ids))


async def apply_responses(conn: Connection, responses: Sequence[Response]) -> int:
    """Settle requests with their responses; return how many changed (others are ignored)."""
    latest: dict[uuid.UUID, Response] = {}
    for response in responses:
        held = latest.get(response.request_id)
        if held is None or response.finished_at > held.finished_at:
            latest[response.request_id] = response
    rows = [
        {
            "request_id": response.request_id,
            "status": response.status,
            "result": response.result,
            "error_code": response.error.code if response.error else None,
            "error_message": response.error.message if response.error else None,
            "finished_at": response.finished_at,
        }
        for response in latest.values()
    ]
    updated = await conn.fetch(APPLY_RESPONSES_SQL, msgspec.json.encode(rows).decode())
    return len(updated)


async def expire(conn: Connection, *, older_than: datetime, limit: int) -> int:
    """Expire pending requests created before `older_than`; forward cancels for sent ones."""
    async with conn.transaction():
        rows = await conn.fetch(EXPIRE_SQL, older_than, limit)
        now = datetime.now(older_than.tzinfo)
        cancels = [
            Cancel(request_id=row["id"], user_id=row["user_id"], requested_at=now)
            for row in rows
            if row["status"] != "queued"
        ]
        await enqueue(conn, cancels)
    return len(rows)


def ttl_cutoff(now: datetime, ttl_hours: float) -> datetime:
    """Requests created before this have outlived the TTL."""
    return now - timedelta(hours=ttl_hours)


def request_out(row: asyncpg.Record) -> RequestOut:
    """A request row (selected with `COLUMNS`) as the API shows it."""
    error = None
    if row["error_code"] is not None:
        error = RequestError(row["error_code"], row["error_message"] or "")
    result = row["result"]
    return RequestOut(
        id=row["id"],
        type=row["type"],
        status=row["status"],
        payload=_payload_decoder.decode(row["payload"]),
        response=None if result is None else _decoder.decode(result),
        error=error,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        cancel_requested=row["cancel_requested"],
    )


def not_found() -> Exception:
    """The 404 for a request the caller may not see."""
    return gateway_error(404, GatewayErrorCode.REQUEST_NOT_FOUND, "The request does not exist.")

"""Applying a batch's requests and cancels: each request is stored once, and a cancel is
honoured if it comes in time (before the request started, or even before the request)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

import msgspec

from airlink.records import Cancel, ProcessorBusiness, Request
from response_processor.requests.lifecycle import finish
from response_processor.requests.status import RequestStatus
from servicekit.database import Connection

# A request seen before (a resent batch) is left alone: it is stored and run once.
INSERT_REQUESTS_SQL: Final = """
    INSERT INTO request (id, user_id, type, payload, trace_id, created_at, source_batch_id)
    SELECT r.*, $7 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[],
                              $6::timestamptz[]) AS r
    ON CONFLICT (id) DO NOTHING
    RETURNING id
"""
# A cancel that came before its request (batches cross out of order) still counts.
EARLIER_CANCELS_SQL: Final = """
    UPDATE request r SET cancel_requested = true
    FROM request_cancel c
    WHERE c.request_id = ANY($1) AND r.id = c.request_id AND r.user_id = c.user_id
"""
# Cancels are kept on their own, so that one arriving before its request still counts.
INSERT_CANCELS_SQL: Final = """
    INSERT INTO request_cancel (request_id, user_id, requested_at)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
    ON CONFLICT (request_id) DO NOTHING
"""
# Only the request's own user may cancel it; one that has started runs to its end.
MARK_CANCELLED_SQL: Final = """
    UPDATE request r SET cancel_requested = true
    FROM unnest($1::uuid[], $2::uuid[]) AS c (request_id, user_id)
    WHERE r.id = c.request_id AND r.user_id = c.user_id AND r.status = $3
    RETURNING r.id
"""

_encoder = msgspec.json.Encoder(order="deterministic")


async def apply_inbound(
    conn: Connection, records: Sequence[ProcessorBusiness], batch_id: uuid.UUID
) -> list[uuid.UUID]:
    """Store new requests (once) and apply cancels; return the requests stored now, whose
    jobs the caller queues after commit. Nothing here runs a handler."""
    requests = [record for record in records if isinstance(record, Request)]
    cancels = [record for record in records if isinstance(record, Cancel)]
    stored = await _insert_requests(conn, requests, batch_id) if requests else []
    if cancels:
        await _apply_cancels(conn, cancels)
    return stored


async def _insert_requests(
    conn: Connection, requests: Sequence[Request], batch_id: uuid.UUID
) -> list[uuid.UUID]:
    rows = await conn.fetch(
        INSERT_REQUESTS_SQL,
        [request.id for request in requests],
        [request.user_id for request in requests],
        [request.type for request in requests],
        [_encoder.encode(request.payload).decode() for request in requests],
        [request.trace_id for request in requests],
        [request.created_at for request in requests],
        batch_id,
    )
    stored = [row["id"] for row in rows]
    if stored and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM request_cancel)"):
        await conn.execute(EARLIER_CANCELS_SQL, stored)
    return stored


async def _apply_cancels(conn: Connection, cancels: Sequence[Cancel]) -> None:
    request_ids = [cancel.request_id for cancel in cancels]
    user_ids = [cancel.user_id for cancel in cancels]
    await conn.execute(
        INSERT_CANCELS_SQL, request_ids, user_ids, [cancel.requested_at for cancel in cancels]
    )
    # Requests not started yet are answered now, in this transaction.
    received: RequestStatus = "received"
    for row in await conn.fetch(MARK_CANCELLED_SQL, request_ids, user_ids, received):
        await finish(conn, row["id"], "cancelled")

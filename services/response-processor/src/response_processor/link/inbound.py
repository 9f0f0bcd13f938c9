"""Applying the gateway's batches: requests are stored once, cancels honoured if in time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

import msgspec

from airlink.records import Cancel, ProcessorBusiness, Request
from batchformat import Header
from response_processor.processing.outcomes import finish
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
    WHERE r.id = c.request_id AND r.user_id = c.user_id AND r.status = 'received'
    RETURNING r.id
"""

_encoder = msgspec.json.Encoder(order="deterministic")


class ProcessorInbound:
    """The processor's `airlink.InboundHandler`: runs inside each import's transaction.

    It remembers which requests each batch stored, so that their jobs are queued once the
    import has committed (`take_new_requests`, from the link's after-import hook).
    """

    def __init__(self) -> None:
        self._new: dict[uuid.UUID, list[uuid.UUID]] = {}

    async def apply(
        self, conn: Connection, records: Sequence[ProcessorBusiness], header: Header
    ) -> None:
        """Store new requests (once) and apply cancels; nothing here runs a handler."""
        requests = [record for record in records if isinstance(record, Request)]
        cancels = [record for record in records if isinstance(record, Cancel)]
        if requests:
            stored = await _insert_requests(conn, requests, header.batch_id)
            self._new.setdefault(header.batch_id, []).extend(stored)
        if cancels:
            await _apply_cancels(conn, cancels)

    def take_new_requests(self, batch_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """The requests these batches stored; forgets them, and any other batch's (failed)."""
        taken = [request for batch_id in batch_ids for request in self._new.get(batch_id, [])]
        self._new.clear()
        return taken

    async def on_acknowledged(self, conn: Connection, batch_ids: Sequence[uuid.UUID]) -> None:
        """Nothing to do: the link marks our batches acknowledged, responses need no more."""


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
    # Requests not started yet are answered "cancelled" now, in this transaction.
    for row in await conn.fetch(MARK_CANCELLED_SQL, request_ids, user_ids):
        await finish(conn, row["id"], "cancelled")

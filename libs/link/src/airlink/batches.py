"""Listing the batches a side has sent and received, for operators (`GET /api/v1/.../batches`):
by peer, newest first, behind `servicekit.paging` cursors naming `(peer, seq)`."""

# ruff: noqa: S608 - the SQL interpolates only the constant names of airlink.schema
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

import msgspec

from airlink.schema import INBOUND_BATCH, OUTBOUND_BATCH
from servicekit import paging
from servicekit.database import Connection
from servicekit.fields import BigInt, Text

OUTBOUND_SQL: Final = f"""
    SELECT batch_id, peer, seq, reason AS kind, record_count, business_count, size_bytes,
           created_at, published_at, last_published_at, publish_count, acknowledged_at
    FROM {OUTBOUND_BATCH}
    WHERE $1::text IS NULL OR (peer, seq) < ($1, $2::bigint)
    ORDER BY peer DESC, seq DESC LIMIT $3
"""
INBOUND_SQL: Final = f"""
    SELECT batch_id, source, seq, record_count, business_count, created_at,
           first_received_at, last_received_at, times_received
    FROM {INBOUND_BATCH}
    WHERE $1::text IS NULL OR (source, seq) < ($1, $2::bigint)
    ORDER BY source DESC, seq DESC LIMIT $3
"""


class OutboundBatch(msgspec.Struct, frozen=True):
    """A batch this side made for its peer, and how far it got."""

    batch_id: uuid.UUID
    peer: str
    seq: int
    kind: str  # "new" or "heartbeat"
    record_count: int
    business_count: int
    size_bytes: int | None
    created_at: datetime
    published_at: datetime | None
    last_published_at: datetime | None
    publish_count: int
    acknowledged_at: datetime | None


class InboundBatch(msgspec.Struct, frozen=True):
    """A batch received from the peer and applied (once, however often it came)."""

    batch_id: uuid.UUID
    source: str
    seq: int
    record_count: int
    business_count: int
    created_at: datetime
    first_received_at: datetime
    last_received_at: datetime
    times_received: int


BatchCursor = tuple[Text, BigInt]
"""A listing's position: `(peer, seq)` of the last batch seen."""


async def list_outbound(
    conn: Connection, *, cursor: str | None = None, limit: int = 100
) -> paging.Page[OutboundBatch]:
    """Sent batches, newest first per peer (peers in descending order: one index scan)."""
    after = paging.decode_cursor(cursor, BatchCursor) if cursor else (None, None)
    rows = await conn.fetch(OUTBOUND_SQL, *after, limit + 1)
    return paging.page_of(rows, limit, lambda row: OutboundBatch(**row), lambda b: (b.peer, b.seq))


async def list_inbound(
    conn: Connection, *, cursor: str | None = None, limit: int = 100
) -> paging.Page[InboundBatch]:
    """Received batches, newest first per source (sources in descending order: one index scan)."""
    after = paging.decode_cursor(cursor, BatchCursor) if cursor else (None, None)
    rows = await conn.fetch(INBOUND_SQL, *after, limit + 1)
    return paging.page_of(rows, limit, lambda row: InboundBatch(**row), lambda b: (b.source, b.seq))

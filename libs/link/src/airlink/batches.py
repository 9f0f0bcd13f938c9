"""Listing the batches a side has sent and received, for operators (`GET /api/v1/.../batches`)."""

# ruff: noqa: S608 - the SQL interpolates only the constant names of airlink.schema
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

import msgspec

from airlink.schema import INBOUND_BATCH, OUTBOUND_BATCH
from servicekit.database import Connection

OUTBOUND_SQL: Final = f"""
    SELECT batch_id, peer, seq, reason AS kind, record_count, business_count, size_bytes,
           created_at, published_at, last_published_at, publish_count, acknowledged_at
    FROM {OUTBOUND_BATCH}
    WHERE ($1::bigint IS NULL OR seq < $1)
    ORDER BY peer, seq DESC LIMIT $2
"""
INBOUND_SQL: Final = f"""
    SELECT batch_id, source, seq, record_count, business_count, created_at,
           first_received_at, last_received_at, times_received
    FROM {INBOUND_BATCH}
    WHERE ($1::bigint IS NULL OR seq < $1)
    ORDER BY source, seq DESC LIMIT $2
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


async def list_outbound(
    conn: Connection, *, before_seq: int | None = None, limit: int = 100
) -> list[OutboundBatch]:
    """Sent batches, newest first; page with the last seq seen as `before_seq`."""
    rows = await conn.fetch(OUTBOUND_SQL, before_seq, limit)
    return [OutboundBatch(**dict(row)) for row in rows]


async def list_inbound(
    conn: Connection, *, before_seq: int | None = None, limit: int = 100
) -> list[InboundBatch]:
    """Received batches, newest first; page with the last seq seen as `before_seq`."""
    rows = await conn.fetch(INBOUND_SQL, before_seq, limit)
    return [InboundBatch(**dict(row)) for row in rows]

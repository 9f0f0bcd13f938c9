"""Render an outbound batch from its rows and publish it; byte for byte the same every time.

The header comes from the batch row, the records from the items of its slices in (group,
position) order. Items hold the exact JSON text `enqueue` encoded (sorted dict keys, as
batchformat's writer encodes), and it is written out as it is stored; Ed25519 signatures
are deterministic; so every rendering of a batch, the first included, is the same bytes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from airlink import metrics
from airlink.schema import SLICE_ITEMS
from batchformat import BatchWriter, Header, PublishedBatch, RecipientKeys, SigningKey
from servicekit.database import Connection

_ITEMS = f"""
    SELECT item.kind, convert_to(item.record::text, 'UTF8') {SLICE_ITEMS}
      AND batch.batch_id = $1
    ORDER BY item.group_id, item.position
"""


@dataclass(frozen=True, slots=True)
class OutboundBatchRow:
    """What a `link_outbound_batch` row says about a batch: enough to render it."""

    batch_id: uuid.UUID
    source: str
    peer: str
    seq: int
    created_at: datetime
    reason: str
    record_count: int
    published_at: datetime | None
    sha256: str | None

    @classmethod
    def from_record(cls, row: Any) -> OutboundBatchRow:
        """Build from an asyncpg record selected with `OUTBOUND_COLUMNS`."""
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def kind(self) -> metrics.ExportKind:
        """What publishing it now is: a first publication (`new`, `heartbeat`) or a resend."""
        if self.published_at is not None:
            return "resend"
        return "heartbeat" if self.reason == "heartbeat" else "new"

    @property
    def header(self) -> Header:
        """The header line, from the stored fields only."""
        return Header(
            batch_id=self.batch_id,
            source=self.source,
            destination=self.peer,
            seq=self.seq,
            created_at=self.created_at,
        )


OUTBOUND_COLUMNS: Final = ", ".join(OutboundBatchRow.__slots__)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A batch written and published into the outbox."""

    published: PublishedBatch
    record_kinds: dict[str, int]


async def render_batch(
    conn: Connection,
    batch: OutboundBatchRow,
    outbox: Path,
    key: SigningKey,
    encrypt_to: RecipientKeys | None = None,
) -> Rendered:
    """Write the batch from the database into the outbox and publish it atomically."""
    # The items are read whole (a batch holds at most max_batch_records of them) so that the
    # file work runs in one thread call: a cancelled caller never leaves a writer half-used.
    rows = await conn.fetch(_ITEMS, batch.batch_id)
    return await asyncio.to_thread(_write, outbox, batch.header, rows, key, encrypt_to)


def _write(
    outbox: Path,
    header: Header,
    rows: Sequence[Any],
    key: SigningKey,
    encrypt_to: RecipientKeys | None,
) -> Rendered:
    kinds = Counter(row[0] for row in rows)
    with BatchWriter(outbox, header, key, encrypt_to=encrypt_to) as writer:
        # Raw: the stored text is the record line, byte for byte.
        writer.write_many(msgspec.Raw(row[1]) for row in rows)
    return Rendered(writer.publish(), dict(kinds))

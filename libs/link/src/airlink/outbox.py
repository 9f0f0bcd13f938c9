"""The outbox: records to send, written in the caller's transaction (docs/link-protocol.md).

A service calls `enqueue` in the same transaction as the change a record reports, so the
record exists if and only if the change committed. Each call writes one *group*: a row in
`link_outbox_group` and its records as items 0..n-1 in `link_outbox_item`, stored as the
exact JSON text a batch will carry. The exporter later takes slices of pending groups.
"""

# ruff: noqa: S608 - the SQL interpolates only the constant names of airlink.schema
from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

import msgspec

from airlink.records import ACK_KIND, Ack, OutboundRecord, kind_of, kinds_of
from airlink.schema import ITEM_COLUMNS, OUTBOX_GROUP, OUTBOX_ITEM, SLICE_ITEMS
from servicekit.database import Connection

T = TypeVar("T")

# Below this many records one statement beats COPY, which first looks up the table's columns.
COPY_THRESHOLD: Final = 64
CHECK_CHUNK: Final = 5_000

# The same encoder as batchformat's writer: what is stored is exactly what will be sent.
_encoder = msgspec.json.Encoder(order="deterministic")
_checkers: dict[type[Any], msgspec.json.Decoder[Any]] = {}

_NEW_GROUP = f"""
    INSERT INTO {OUTBOX_GROUP} (item_count, business) VALUES ($1, true) RETURNING group_id
"""
_INSERT_SMALL = f"""
    WITH new_group AS (
        INSERT INTO {OUTBOX_GROUP} (item_count, business)
        VALUES (cardinality($1::text[]), true) RETURNING group_id
    )
    INSERT INTO {OUTBOX_ITEM} (group_id, position, kind, record)
    SELECT new_group.group_id, item.position - 1, item.kind, item.record
    FROM new_group, unnest($1::text[], $2::json[]) WITH ORDINALITY AS item (kind, record, position)
"""
_INSERT_ACK = f"""
    WITH new_group AS (
        INSERT INTO {OUTBOX_GROUP} (item_count, business, acks_business_batch, created_at)
        VALUES (1, false, $2, $3) RETURNING group_id
    )
    INSERT INTO {OUTBOX_ITEM} (group_id, position, kind, record)
    SELECT group_id, 0, 'ack', $1::json FROM new_group
"""
_SENT_RECORDS = f"""
    SELECT convert_to(item.record::text, 'UTF8') {SLICE_ITEMS}
      AND batch.batch_id = ANY($1) AND item.kind = ANY($2)
    ORDER BY batch.seq, item.group_id, item.position
"""


async def enqueue(conn: Connection, records: Iterable[OutboundRecord]) -> int:
    """Queue records for the peer inside the caller's transaction; return how many.

    Each record is checked against its struct first; msgspec.ValidationError (or TypeError
    for an ack) means the caller's transaction must be rolled back.
    """
    records = list(records)
    if not records:
        return 0
    if len(records) < COPY_THRESHOLD:
        kinds, texts = _checked(records)
        await conn.execute(_INSERT_SMALL, kinds, texts)
    else:
        group_id = await conn.fetchval(_NEW_GROUP, len(records))
        rows = _checked_rows(group_id, records)
        await conn.copy_records_to_table(OUTBOX_ITEM, records=rows, columns=ITEM_COLUMNS)
    return len(records)


async def queue_ack(
    conn: Connection, batch_id: uuid.UUID, seq: int, *, business: bool, now: datetime
) -> None:
    """Queue the ack of a peer batch; `business` if that batch carried more than acks."""
    record = _encoder.encode(Ack(batch_id=batch_id, seq=seq)).decode()
    await conn.execute(_INSERT_ACK, record, business, now)


async def sent_records(
    conn: Connection, batch_ids: Sequence[uuid.UUID], decoder: msgspec.json.Decoder[T]
) -> list[T]:
    """The records of the decoder's kinds that our batches carried, typed, in batch order.

    For a service's `acknowledged`: say, the gateway finding which requests the processor
    now holds.
    """
    rows = await conn.fetch(_SENT_RECORDS, list(batch_ids), kinds_of(decoder.type))
    return [decoder.decode(row[0]) for row in rows]


async def _checked_rows(
    group_id: int, records: Sequence[OutboundRecord]
) -> AsyncIterator[tuple[int, int, str, str]]:
    """The items' rows for COPY, checked and encoded in a thread a chunk ahead.

    Checking 100,000 records is half a second of CPU: off the event loop, and overlapping
    with the database's work on the rows already sent.
    """
    chunks = [records[start : start + CHECK_CHUNK] for start in range(0, len(records), CHECK_CHUNK)]
    upcoming = asyncio.ensure_future(asyncio.to_thread(_checked, chunks[0]))
    position = 0
    try:
        for following in [*chunks[1:], None]:
            kinds, texts = await upcoming
            if following is not None:
                upcoming = asyncio.ensure_future(asyncio.to_thread(_checked, following))
            for kind, text in zip(kinds, texts, strict=True):
                yield group_id, position, kind, text
                position += 1
    finally:
        with contextlib.suppress(Exception):  # the error that ended the COPY is the one raised
            await upcoming


def _checked(records: Sequence[OutboundRecord]) -> tuple[list[str], list[str]]:
    """The records' kinds and JSON, after checking the peer's decoder would accept each.

    Structs built in Python skip their constraints (lengths, time zones, literals); a record
    that breaks one would reject the whole batch at the peer, so it is refused here instead.
    """
    kinds = []
    texts = []
    for record in records:
        kind = kind_of(record)
        if kind == ACK_KIND:
            raise TypeError("acks are queued by the link itself, not by services")
        record_type = type(record)
        checker = _checkers.get(record_type)
        if checker is None:
            checker = _checkers[record_type] = msgspec.json.Decoder(record_type)
        data = _encoder.encode(record)
        # One record at a time: decoding them all as one list would keep 100,000 payload
        # dicts alive at once and make the cyclic garbage collector crawl over them.
        checker.decode(data)  # raises msgspec.ValidationError, naming the field
        kinds.append(kind)
        texts.append(data.decode())
    return kinds, texts

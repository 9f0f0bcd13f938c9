"""enqueue: outbox items are written in the caller's transaction, checked, in order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest

from airlink import enqueue
from airlink.outbox import COPY_THRESHOLD, queue_ack, sent_records
from airlink.records import Ack, Request, Response
from servicekit.testing import MakeDatabase
from tests.link.conftest import T0, SideFactory, at, link_database, request, response


@pytest.fixture
async def conn(postgres_database: MakeDatabase) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await asyncpg.connect(link_database(postgres_database))
    try:
        yield connection
    finally:
        await connection.close()


async def items(conn: asyncpg.Connection[Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = await conn.fetch("SELECT kind, record FROM link_outbox_item ORDER BY group_id, position")
    return [(row["kind"], msgspec.json.decode(row["record"])) for row in rows]


async def test_items_are_stored_with_their_kind_in_order(conn: asyncpg.Connection[Any]) -> None:
    async with conn.transaction():
        assert await enqueue(conn, [request(1), response(2)]) == 2
    stored = await items(conn)
    assert [kind for kind, _ in stored] == ["request", "response"]
    assert stored[0][1] == msgspec.to_builtins(request(1))
    pending = "SELECT item_count - batched_count FROM link_outbox_group WHERE business"
    assert await conn.fetchval(pending) == 2


async def test_items_vanish_with_the_callers_rolled_back_transaction(
    conn: asyncpg.Connection[Any],
) -> None:
    transaction = conn.transaction()
    await transaction.start()
    await enqueue(conn, [request(1)])
    await transaction.rollback()  # the change this item reports failed
    assert await items(conn) == []


async def test_many_records_go_through_copy_in_order(conn: asyncpg.Connection[Any]) -> None:
    records = [request(n) for n in range(COPY_THRESHOLD * 3)]
    async with conn.transaction():
        await enqueue(conn, records)
    stored = await items(conn)
    assert [record["payload"]["n"] for _, record in stored] == list(range(len(records)))


async def test_a_record_the_peer_would_refuse_is_refused_here(
    conn: asyncpg.Connection[Any],
) -> None:
    naive = request(1, created_at=T0.replace(tzinfo=None))
    with pytest.raises(msgspec.ValidationError, match="created_at"):
        await enqueue(conn, [request(0), naive])
    assert await items(conn) == []


async def test_a_bad_record_in_a_large_enqueue_is_refused_and_nothing_is_kept(
    conn: asyncpg.Connection[Any],
) -> None:
    records = [request(n) for n in range(COPY_THRESHOLD * 100)]
    records[-3] = request(1, trace_id="")
    transaction = conn.transaction()
    await transaction.start()
    with pytest.raises(msgspec.ValidationError, match="trace_id"):
        await enqueue(conn, records)
    await transaction.rollback()
    assert await items(conn) == []
    assert await conn.fetchval("SELECT count(*) FROM link_outbox_group") == 0


async def test_services_cannot_queue_acks_themselves(conn: asyncpg.Connection[Any]) -> None:
    with pytest.raises(TypeError, match="acks"):
        await enqueue(conn, [Ack(uuid.uuid4(), 1)])  # type: ignore[list-item]


async def test_an_ack_remembers_whether_it_acknowledges_business(
    conn: asyncpg.Connection[Any],
) -> None:
    batch_id = uuid.uuid4()
    await queue_ack(conn, batch_id, 5, business=True, now=T0)
    row = await conn.fetchrow(
        "SELECT kind, record, acks_business_batch, business, created_at "
        "FROM link_outbox_item JOIN link_outbox_group USING (group_id)"
    )
    assert row is not None
    assert row["kind"] == "ack"
    assert msgspec.json.decode(row["record"]) == {
        "kind": "ack",
        "batch_id": str(batch_id),
        "seq": 5,
    }
    assert row["acks_business_batch"] is True
    assert row["business"] is False
    assert row["created_at"] == T0


async def test_enqueueing_nothing_writes_nothing(conn: asyncpg.Connection[Any]) -> None:
    assert await enqueue(conn, []) == 0
    assert await items(conn) == []


async def test_sent_records_are_what_our_batches_carried_typed_in_batch_order(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway", max_batch_records=2)
    await gateway.enqueue([request(n) for n in range(3)])
    first, second = (await gateway.link.export_once(at(0))).batches
    requests = msgspec.json.Decoder(Request)
    async with gateway.pool.acquire() as connection:
        carried = await sent_records(connection, [second.batch_id, first.batch_id], requests)
        responses = msgspec.json.Decoder(Response)
        assert await sent_records(connection, [first.batch_id], responses) == []
    assert carried == [request(n) for n in range(3)]

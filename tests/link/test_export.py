"""The exporter: which items go in which batch, when batches are made, resent and recovered."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

from airlink import enqueue
from airlink.outbox import queue_ack
from tests.link.conftest import SideFactory, at, read_batch, request


async def test_business_items_are_exported_in_one_signed_batch(
    sides: SideFactory, key_dir: Path
) -> None:
    gateway = await sides.side("gateway")
    await gateway.enqueue([request(1), request(2)])
    report = await gateway.link.export_once(at(0))
    assert [(b.seq, b.kind, b.record_count) for b in report.batches] == [(1, "new", 2)]
    [path] = gateway.outbox_files()
    header, records = read_batch(path, key_dir)
    assert (header.source, header.destination, header.seq) == ("request-net", "response-net", 1)
    assert header.batch_id == report.batches[0].batch_id
    assert records == [request(1), request(2)]
    assert (
        await gateway.fetchval(
            "SELECT count(*) FROM link_outbox_group WHERE batched_count < item_count"
        )
        == 0
    )


async def test_an_idle_side_sends_an_empty_heartbeat_each_interval(sides: SideFactory) -> None:
    gateway = await sides.side("gateway")
    first = await gateway.link.export_once(at(0))
    assert [(b.kind, b.record_count) for b in first.batches] == [("heartbeat", 0)]
    assert (await gateway.link.export_once(at(29.9))).batches == []
    second = await gateway.link.export_once(at(30))
    assert [(b.seq, b.kind) for b in second.batches] == [(2, "heartbeat")]


async def test_an_item_committed_after_a_later_id_was_exported_is_still_exported(
    sides: SideFactory, key_dir: Path
) -> None:
    # The outbox pitfall: ids are allocated at INSERT, visible at COMMIT. A "last exported
    # id" high-water mark would skip the slow transaction's smaller id for ever.
    gateway = await sides.side("gateway")
    async with gateway.pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        await enqueue(slow, [request(1)])  # takes the smaller id, commits late
        await gateway.enqueue([request(2)])
        first = await gateway.link.export_once(at(0))
        await transaction.commit()
    second = await gateway.link.export_once(at(1))
    groups = "SELECT group_id FROM link_outbox_item ORDER BY kind, record->>'id'"
    assert [row[0] for row in await gateway.pool.fetch(groups)] == [1, 2]  # request 1 first
    first_path, second_path = gateway.outbox_files()
    assert read_batch(first_path, key_dir)[1] == [request(2)]
    assert read_batch(second_path, key_dir)[1] == [request(1)]
    assert [b.seq for b in first.batches + second.batches] == [1, 2]


async def test_a_batch_renders_again_byte_for_byte(sides: SideFactory) -> None:
    gateway = await sides.side("gateway", resend_after_s=60)
    await gateway.enqueue([request(n) for n in range(50)])
    await gateway.link.export_once(at(0))
    [path] = gateway.outbox_files()
    original = path.read_bytes()
    path.unlink()  # lost on the way
    report = await gateway.link.export_once(at(61))
    assert [b.kind for b in report.batches] == ["resend", "heartbeat"]
    assert path.read_bytes() == original


async def test_an_unacknowledged_batch_is_resent_after_resend_after_with_same_id_and_seq(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway")
    await gateway.enqueue([request(1)])
    [sent] = (await gateway.link.export_once(at(0))).batches
    for second in (30, 60, 299):  # heartbeats, and no resend yet
        assert (await gateway.link.export_once(at(second))).of_kind("resend") == []
    resent = (await gateway.link.export_once(at(300))).of_kind("resend")
    assert [(b.batch_id, b.seq, b.sha256) for b in resent] == [(sent.batch_id, 1, sent.sha256)]
    assert (await gateway.link.export_once(at(301))).of_kind("resend") == []
    again = (await gateway.link.export_once(at(600))).of_kind("resend")
    assert sent.batch_id in [b.batch_id for b in again]  # every resend_after_s until acked
    count = "SELECT publish_count FROM link_outbound_batch WHERE batch_id = $1"
    assert await gateway.fetchval(count, sent.batch_id) == 3


async def test_an_acknowledged_batch_is_not_resent(sides: SideFactory) -> None:
    gateway = await sides.side("gateway")
    await gateway.enqueue([request(1)])
    await gateway.link.export_once(at(0))
    await gateway.pool.execute("UPDATE link_outbound_batch SET acknowledged_at = $1", at(1))
    assert (await gateway.link.export_once(at(400))).of_kind("resend") == []


async def test_a_batch_created_but_never_published_is_published_on_the_next_pass(
    sides: SideFactory, key_dir: Path
) -> None:
    gateway = await sides.side("gateway")
    outbox = gateway.settings.outbox_dir
    await gateway.link.export_once(at(0))  # the first heartbeat
    await gateway.enqueue([request(1)])
    shutil.rmtree(outbox)
    outbox.write_text("not a folder")  # publication fails after the batch row committed
    with pytest.raises(NotADirectoryError):
        await gateway.link.export_once(at(1))
    unpublished = "SELECT seq FROM link_outbound_batch WHERE published_at IS NULL"
    assert await gateway.fetchval(unpublished) == 2
    outbox.unlink()
    outbox.mkdir()
    report = await gateway.link.export_once(at(2))
    assert [(b.seq, b.kind) for b in report.batches] == [(2, "new")]
    assert read_batch(gateway.outbox_files()[0], key_dir)[1] == [request(1)]
    assert await gateway.fetchval(unpublished) is None


async def test_a_backlog_is_cut_into_batches_of_max_batch_records(sides: SideFactory) -> None:
    gateway = await sides.side("gateway", max_batch_records=5)
    await gateway.enqueue([request(n) for n in range(12)])
    report = await gateway.link.export_once(at(0))
    assert [(b.seq, b.record_count) for b in report.batches] == [(1, 5), (2, 5), (3, 2)]


async def test_an_ack_of_a_business_batch_is_sent_after_ack_delay(sides: SideFactory) -> None:
    gateway = await sides.side("gateway")
    await gateway.link.export_once(at(0))  # the first heartbeat
    async with gateway.pool.acquire() as conn:
        await queue_ack(conn, uuid.uuid4(), 7, business=True, now=at(1))
    assert (await gateway.link.export_once(at(2.9))).batches == []
    [batch] = (await gateway.link.export_once(at(3))).batches
    assert (batch.kind, batch.record_count) == ("new", 1)


async def test_acks_of_ack_only_batches_wait_for_the_next_heartbeat(sides: SideFactory) -> None:
    gateway = await sides.side("gateway")
    await gateway.link.export_once(at(0))
    async with gateway.pool.acquire() as conn:
        await queue_ack(conn, uuid.uuid4(), 7, business=False, now=at(1))
    for second in (3, 10, 29):
        assert (await gateway.link.export_once(at(second))).batches == []
    [batch] = (await gateway.link.export_once(at(30))).batches
    assert (batch.kind, batch.record_count) == ("heartbeat", 1)


async def test_acks_ride_along_with_business_items(sides: SideFactory) -> None:
    gateway = await sides.side("gateway")
    await gateway.link.export_once(at(0))
    async with gateway.pool.acquire() as conn:
        await queue_ack(conn, uuid.uuid4(), 7, business=False, now=at(1))
    await gateway.enqueue([request(1)])
    [batch] = (await gateway.link.export_once(at(2))).batches
    assert (batch.kind, batch.record_count) == ("new", 2)


async def test_concurrent_exporters_export_every_item_once_with_distinct_seqs(
    sides: SideFactory, key_dir: Path
) -> None:
    first = await sides.side("gateway", max_batch_records=7)
    second = await sides.side("gateway", url=first.url, max_batch_records=7)
    await first.enqueue([request(n) for n in range(100)])
    reports = await asyncio.gather(
        *(side.link.export_once(at(0)) for side in (first, second, first, second))
    )
    batches = [batch for report in reports for batch in report.batches]
    assert sorted(b.seq for b in batches) == list(range(1, len(batches) + 1))
    assert len(first.outbox_files()) == len(batches)  # each published once, by one exporter
    records = [r for path in first.outbox_files() for r in read_batch(path, key_dir)[1]]
    assert sorted(r.payload["n"] for r in records) == list(range(100))

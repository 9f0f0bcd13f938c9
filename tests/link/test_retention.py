"""Retention: acknowledged batches, their outbox rows, inbound records and archived files older
than the cutoff are purged; what the link still needs stays, and the link goes on working."""

from __future__ import annotations

import os
import uuid

from prometheus_client import REGISTRY

from airlink.retention import purge
from batchformat import load_signing_key
from tests.link.conftest import Side, SideFactory, at, publish, request

OUTBOUND = "SELECT batch_id FROM link_outbound_batch ORDER BY seq"


async def _exchange(gateway: Side, processor: Side, second: int) -> list[uuid.UUID]:
    """The gateway exports what is queued, the processor imports and acknowledges it, and the
    gateway imports the acknowledgement; the new batches' ids."""
    sent = [batch.batch_id for batch in (await gateway.link.export_once(at(second))).batches]
    await processor.link.import_once(at(second + 1))
    await processor.link.export_once(at(second + 5))  # past the ack delay
    await gateway.link.import_once(at(second + 6))
    return sent


async def _groups(side: Side) -> dict[int, int]:
    """Outbox group id -> its items still stored."""
    rows = await side.pool.fetch(
        """SELECT g.group_id, count(i.position) AS items FROM link_outbox_group AS g
           LEFT JOIN link_outbox_item AS i USING (group_id) GROUP BY g.group_id"""
    )
    return {row["group_id"]: row["items"] for row in rows}


def _purged(what: str) -> float:
    return REGISTRY.get_sample_value("retention_purged_total", {"what": what}) or 0.0


async def test_old_acknowledged_batches_go_with_the_groups_only_they_refer_to(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway", max_batch_records=2)
    processor = await sides.side("processor")
    await gateway.enqueue([request(1), request(2)])  # one group, one batch
    [first] = await _exchange(gateway, processor, 0)
    await gateway.enqueue([request(3), request(4), request(5)])  # one group, two batches
    split = await _exchange(gateway, processor, 20)
    assert len(split) == 2
    await gateway.enqueue([request(6)])
    [unacknowledged] = [b.batch_id for b in (await gateway.link.export_once(at(40))).batches]
    first_group, split_group, last_group = await _request_groups(gateway)
    # The second half of the split group counts as recent: the group must stay with it.
    await gateway.pool.execute(
        "UPDATE link_outbound_batch SET created_at = $2 WHERE batch_id = $1", split[1], at(500)
    )
    purged_before = _purged("outbound_batches")

    purged = await purge(gateway.pool, gateway.settings, at(100))

    assert purged.outbound_batches == 2
    kept = [row["batch_id"] for row in await gateway.pool.fetch(OUTBOUND)]
    assert kept == [split[1], unacknowledged]
    groups = await _groups(gateway)
    assert first_group not in groups
    assert (groups[split_group], groups[last_group]) == (3, 1)
    assert purged.outbox_groups >= 1
    assert _purged("outbound_batches") == purged_before + 2
    assert first not in kept

    # Once the rest of the split group is old too, the group goes with it.
    await gateway.pool.execute(
        "UPDATE link_outbound_batch SET created_at = $2 WHERE batch_id = $1", split[1], at(20)
    )
    again = await purge(gateway.pool, gateway.settings, at(100))
    assert again.outbound_batches == 1
    assert split_group not in await _groups(gateway)
    assert last_group in await _groups(gateway)

    # The link goes on: the unacknowledged batch is resent and new ones follow in sequence.
    await gateway.enqueue([request(7)])
    report = await gateway.link.export_once(at(1000))
    assert [batch.kind for batch in report.batches] == ["resend", "new"]
    await processor.link.import_once(at(1001))
    assert (await processor.link.state(at(1001))).missing_batches == 0


async def _request_groups(side: Side) -> list[int]:
    """The outbox groups holding requests, in order."""
    rows = await side.pool.fetch(
        "SELECT DISTINCT group_id FROM link_outbox_item WHERE kind = 'request' ORDER BY 1"
    )
    return [row["group_id"] for row in rows]


async def test_purging_in_small_chunks_deletes_the_same(sides: SideFactory) -> None:
    gateway = await sides.side("gateway", max_batch_records=1)
    processor = await sides.side("processor")
    await gateway.enqueue([request(n) for n in range(7)])
    assert len(await _exchange(gateway, processor, 0)) == 7
    [group] = await _request_groups(gateway)
    purged = await purge(gateway.pool, gateway.settings, at(100), chunk=2)
    assert purged.outbound_batches == 7
    assert await gateway.pool.fetch(OUTBOUND) == []
    assert group not in await _groups(gateway)
    assert await gateway.fetchval("SELECT count(*) FROM link_outbox_item") == (
        await gateway.fetchval("SELECT sum(item_count) FROM link_outbox_group") or 0
    )


async def test_inbound_records_go_only_below_the_contiguous_sequence(sides: SideFactory) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(sides.key_dir / "request-net-1.key")
    inbox = processor.settings.inbox_dir
    for seq in (1, 2, 4):  # 3 is missing
        publish(inbox, key, [request(seq)], seq)
    await processor.link.import_once(at(0))
    purged_before = _purged("inbound_batches")

    purged = await purge(processor.pool, processor.settings, at(100))

    assert purged.inbound_batches == 2
    seqs = await processor.pool.fetch("SELECT seq FROM link_inbound_batch ORDER BY seq")
    assert [row["seq"] for row in seqs] == [4]  # above the gap: gap tracking needs it
    assert (await processor.link.state(at(1))).missing_seqs == (3,)
    assert _purged("inbound_batches") == purged_before + 2
    # A batch received again recently is kept, whatever its age.
    publish(inbox, key, [request(3)], 3)
    await processor.link.import_once(at(200))
    assert (await processor.link.state(at(201))).missing_batches == 0
    assert (await purge(processor.pool, processor.settings, at(100))).inbound_batches == 1
    left = await processor.pool.fetch("SELECT seq FROM link_inbound_batch ORDER BY seq")
    assert [row["seq"] for row in left] == [3]


async def test_archived_batch_files_older_than_the_cutoff_are_deleted(
    sides: SideFactory,
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(sides.key_dir / "request-net-1.key")
    inbox = processor.settings.inbox_dir
    for seq in (1, 2, 3):
        publish(inbox, key, [request(seq)], seq)
    await processor.link.import_once(at(0))
    archive = processor.settings.archive_dir
    old, recent, also_old = sorted(archive.iterdir())
    stray = archive / "notes.txt"  # not a batch name: never touched
    stray.write_text("operator's notes")
    cutoff = at(100)
    for path in (old, also_old, stray):
        os.utime(path, (cutoff.timestamp() - 86_400, cutoff.timestamp() - 86_400))
    os.utime(recent, (cutoff.timestamp() + 60, cutoff.timestamp() + 60))
    purged_before = _purged("archived_batch_files")

    purged = await purge(processor.pool, processor.settings, cutoff)

    assert purged.archived_batch_files == 2
    assert sorted(path.name for path in archive.iterdir()) == sorted([recent.name, stray.name])
    assert _purged("archived_batch_files") == purged_before + 2

"""The importer: one transaction per batch, duplicates re-acknowledged, rejections quarantined."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from airlink.records import Ack, Cancel
from batchformat import SigningKey, load_signing_key
from batchformat.errors import UnsafeFolder
from batchformat.fsops import UnsafeTargetFolder
from tests.link.conftest import T0, Side, SideFactory, at, publish, request

ACK_ITEMS = "SELECT record FROM link_outbox_item WHERE kind = 'ack' ORDER BY group_id"


async def acks_queued(side: Side) -> list[tuple[str, int]]:
    rows = await side.pool.fetch(ACK_ITEMS)
    return [(r["batch_id"], r["seq"]) for r in (msgspec.json.decode(row[0]) for row in rows)]


def intruder(key_dir: Path, key_id: str = "intruder") -> SigningKey:
    return SigningKey(key_id, load_signing_key(key_dir / "intruder.key").private_key)


async def test_a_batch_is_applied_recorded_acknowledged_and_archived(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    gateway_key = load_signing_key(key_dir / "request-net-1.key")
    batch_id = uuid.uuid4()
    records = [request(1), Cancel(uuid.UUID(int=1), uuid.UUID(int=7), T0)]
    path = publish(processor.settings.inbox_dir, gateway_key, records, 1, batch_id=batch_id)
    report = await processor.link.import_once(at(0))
    assert [(b.name.seq, b.outcome, b.records) for b in report.batches] == [(1, "applied", 2)]
    assert await processor.applied() == [("request", batch_id), ("cancel", batch_id)]
    inbound = await processor.pool.fetchrow("SELECT * FROM link_inbound_batch")
    assert inbound is not None
    assert (inbound["batch_id"], inbound["seq"], inbound["record_count"]) == (batch_id, 1, 2)
    assert await acks_queued(processor) == [(str(batch_id), 1)]
    flag = "SELECT acks_business_batch FROM link_outbox_group"
    assert await processor.fetchval(flag) is True
    assert not path.exists()
    assert (processor.settings.archive_dir / path.name).exists()
    assert list(processor.settings.importing_dir.glob("*/*.jsonl")) == []


async def test_a_batch_seen_before_is_skipped_and_acknowledged_again(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    gateway_key = load_signing_key(key_dir / "request-net-1.key")
    inbox = processor.settings.inbox_dir
    path = publish(inbox, gateway_key, [request(1)], 1)
    original = path.read_bytes()
    await processor.link.import_once(at(0))
    path.write_bytes(original)  # the peer resent it: its ack was lost
    report = await processor.link.import_once(at(400))
    assert [(b.outcome, b.records) for b in report.batches] == [("duplicate", 1)]
    assert len(await processor.applied()) == 1
    assert len(await acks_queued(processor)) == 2
    seen = "SELECT times_received, last_received_at FROM link_inbound_batch"
    assert tuple(await processor.pool.fetchrow(seen) or ()) == (2, at(400))
    assert list(inbox.glob("*.jsonl")) == []


async def test_batches_arriving_out_of_order_are_all_applied(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    gateway_key = load_signing_key(key_dir / "request-net-1.key")
    inbox = processor.settings.inbox_dir
    for seq in (3, 1):
        publish(inbox, gateway_key, [request(seq)], seq)
    await processor.link.import_once(at(0))
    publish(inbox, gateway_key, [request(2)], 2)
    await processor.link.import_once(at(1))
    rows = await processor.pool.fetch("SELECT record->'payload'->>'n' FROM applied ORDER BY n")
    assert [row[0] for row in rows] == ["1", "3", "2"]
    assert await processor.fetchval("SELECT inbound_contiguous_seq FROM link_peer") == 3


async def test_a_corrupted_batch_is_quarantined_and_nothing_of_it_is_applied(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    gateway_key = load_signing_key(key_dir / "request-net-1.key")
    records = [request(n) for n in range(12_000)]  # several chunks reach the handler first
    path = publish(processor.settings.inbox_dir, gateway_key, records, 1)
    data = bytearray(path.read_bytes())
    position = data.rindex(b'"n":11999')
    data[position + 5] = ord("8")  # still valid JSON, still a valid record
    path.write_bytes(bytes(data))
    report = await processor.link.import_once(at(0))
    assert [(b.outcome, b.reason) for b in report.batches] == [("quarantined", "digest_mismatch")]
    assert len(processor.service.calls) >= 2  # applied, then rolled back
    assert await processor.applied() == []
    assert await processor.fetchval("SELECT count(*) FROM link_inbound_batch") == 0
    assert await acks_queued(processor) == []
    assert processor.quarantined() == [path.name]
    reason = processor.settings.quarantine_dir / f"{path.name}.reason.json"
    assert json.loads(reason.read_text())["code"] == "digest_mismatch"


async def test_forged_batches_are_quarantined(sides: SideFactory, key_dir: Path) -> None:
    processor = await sides.side("processor")
    inbox = processor.settings.inbox_dir
    publish(inbox, intruder(key_dir), [request(1)], 1)  # a key nobody trusts
    publish(inbox, intruder(key_dir, "request-net-1"), [request(2)], 2)  # a trusted key's name
    publish(inbox, load_signing_key(key_dir / "request-net-1.key"), [request(3)], 3, source="x")
    report = await processor.link.import_once(at(0))
    assert sorted(str(b.reason) for b in report.batches) == [
        "bad_signature",
        "source_mismatch",
        "unknown_key",
    ]
    assert await processor.applied() == []
    assert len(processor.quarantined()) == 3


async def test_a_batch_for_another_network_is_quarantined(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    publish(processor.settings.inbox_dir, key, [request(1)], 1, destination="elsewhere")
    [batch] = (await processor.link.import_once(at(0))).batches
    assert batch.reason == "destination_mismatch"


async def test_a_failed_apply_leaves_the_batch_claimed_for_the_next_pass(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    path = publish(processor.settings.inbox_dir, key, [request(1)], 1)
    processor.service.fail_with = asyncpg.DeadlockDetectedError("deadlock detected")
    [failed] = (await processor.link.import_once(at(0))).batches
    assert failed.outcome == "failed"
    assert await processor.applied() == []
    assert [p.name for p in processor.settings.importing_dir.glob("*/*.jsonl")] == [path.name]
    processor.service.fail_with = None
    [applied] = (await processor.link.import_once(at(1))).batches
    assert applied.outcome == "applied"
    assert len(await processor.applied()) == 1


async def test_a_batch_its_handler_cannot_apply_does_not_hold_up_the_others(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    poisoned = uuid.uuid4()
    processor.service.poisoned.add(poisoned)
    publish(processor.settings.inbox_dir, key, [request(1)], 1, batch_id=poisoned)
    publish(processor.settings.inbox_dir, key, [request(2)], 2)
    report = await processor.link.import_once(at(0))
    assert [(b.name.seq, b.outcome) for b in report.batches] == [(1, "failed"), (2, "applied")]
    assert (await processor.link.state(at(0))).missing_seqs == (1,)
    processor.service.poisoned.clear()  # the service was fixed
    [retried] = (await processor.link.import_once(at(1))).batches
    assert (retried.name.seq, retried.outcome) == (1, "applied")


async def test_acks_mark_our_batches_acknowledged_once(sides: SideFactory, key_dir: Path) -> None:
    gateway = await sides.side("gateway")
    await gateway.enqueue([request(1)])
    [sent] = (await gateway.link.export_once(at(0))).batches
    processor_key = load_signing_key(key_dir / "response-net-1.key")
    inbox = gateway.settings.inbox_dir
    ack = Ack(sent.batch_id, sent.seq)
    wrong_seq = Ack(sent.batch_id, sent.seq + 1)
    publish(inbox, processor_key, [wrong_seq], 1, source="response-net", destination="request-net")
    publish(inbox, processor_key, [ack, ack], 2, source="response-net", destination="request-net")
    publish(inbox, processor_key, [ack], 3, source="response-net", destination="request-net")
    await gateway.link.import_once(at(1))
    acknowledged = "SELECT acknowledged_at FROM link_outbound_batch WHERE batch_id = $1"
    assert await gateway.fetchval(acknowledged, sent.batch_id) == at(1)
    # the service hears of the records the acknowledged batch carried, typed, once
    [(kind, record)] = await gateway.pool.fetch("SELECT kind, record FROM acknowledged")
    assert (kind, msgspec.json.decode(record)) == ("request", msgspec.to_builtins(request(1)))
    assert gateway.service.calls == []  # acks are the link's, not the service's


async def test_concurrent_importers_apply_each_batch_exactly_once(
    sides: SideFactory, key_dir: Path
) -> None:
    first = await sides.side("processor")
    second = await sides.side("processor", url=first.url)
    key = load_signing_key(key_dir / "request-net-1.key")
    for seq in range(1, 21):
        publish(first.settings.inbox_dir, key, [request(seq), request(100 + seq)], seq)
    reports = await asyncio.gather(first.link.import_once(at(0)), second.link.import_once(at(0)))
    outcomes = [b.outcome for report in reports for b in report.batches]
    assert outcomes == ["applied"] * 20
    assert all(report.batches for report in reports)  # both took part
    assert await first.fetchval("SELECT count(*) FROM applied") == 40
    assert await first.fetchval("SELECT inbound_contiguous_seq FROM link_peer") == 20
    assert len(await acks_queued(first)) == 20


async def test_the_same_batch_claimed_twice_is_applied_once(
    sides: SideFactory, key_dir: Path
) -> None:
    first = await sides.side("processor")
    second = await sides.side("processor", url=first.url)
    key = load_signing_key(key_dir / "request-net-1.key")
    path = publish(first.settings.inbox_dir, key, [request(n) for n in range(3000)], 1)
    data = path.read_bytes()
    for importer in (first, second):  # a copy in each importer's claim folder
        await asyncio.to_thread(importer.link.importer.claims.open)
        (importer.link.importer.claims.path / path.name).write_bytes(data)
    path.unlink()
    reports = await asyncio.gather(first.link.import_once(at(0)), second.link.import_once(at(0)))
    outcomes = sorted(b.outcome for report in reports for b in report.batches)
    assert outcomes == ["applied", "duplicate"]
    # Both applied it provisionally; the one that lost the race rolled back.
    assert first.service.calls
    assert second.service.calls
    assert await first.fetchval("SELECT count(*) FROM applied") == 3000


async def test_batches_claimed_by_a_dead_importer_are_adopted(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    dead = processor.settings.importing_dir / "other-host-123-deadbeef"
    dead.mkdir(parents=True)
    (dead / ".lock").touch()  # its owner died: nobody holds the lock
    publish(dead, key, [request(1)], 1)
    report = await processor.link.import_once(at(0))
    assert [b.outcome for b in report.batches] == ["applied"]
    assert not dead.exists()
    assert os.listdir(processor.settings.importing_dir) == [
        processor.link.importer.claims.path.name
    ]


async def test_strays_in_the_inbox_are_left_alone(sides: SideFactory, key_dir: Path) -> None:
    processor = await sides.side("processor")
    inbox = processor.settings.inbox_dir
    (inbox / "notes.txt").write_text("not a batch")
    (inbox / "request-net__000000000009__not-a-uuid.jsonl").write_text("{}")
    publish(inbox, load_signing_key(key_dir / "request-net-1.key"), [request(1)], 1)
    for second in (0, 1):
        report = await processor.link.import_once(at(second))
    assert [b.outcome for b in report.batches] == []
    assert (inbox / "notes.txt").read_text() == "not a batch"
    assert len(await processor.applied()) == 1


async def test_a_world_writable_inbox_is_refused(sides: SideFactory, key_dir: Path) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    publish(processor.settings.inbox_dir, key, [request(1)], 1)
    processor.settings.inbox_dir.chmod(0o777)
    with pytest.raises(UnsafeFolder, match="writable by every local account"):
        await processor.link.import_once(at(0))
    assert await processor.applied() == []
    processor.settings.inbox_dir.chmod(0o750)
    report = await processor.link.import_once(at(0))
    assert [batch.outcome for batch in report.batches] == ["applied"]


async def test_a_symlinked_quarantine_is_refused_and_nothing_goes_through_it(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    inbox = processor.settings.inbox_dir
    elsewhere = inbox.parent / "elsewhere"
    elsewhere.mkdir()
    processor.settings.quarantine_dir.symlink_to(elsewhere)
    intruder = load_signing_key(key_dir / "intruder.key")
    publish(inbox, intruder, [request(1)], 1)  # rejected: unknown key
    with pytest.raises(UnsafeTargetFolder, match="unsafe_target_folder"):
        await processor.link.import_once(at(0))
    assert list(elsewhere.iterdir()) == []
    assert await processor.applied() == []

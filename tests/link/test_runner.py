"""Link: two sides talking through folders, from a request to its acknowledged answer."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from airlink.batches import list_inbound, list_outbound
from airlink.runner import utc_now
from batchformat import load_signing_key
from servicekit.paging import encode_cursor
from servicekit.testing import eventually
from tests.link.conftest import Side, SideFactory, at, publish, request, response


async def test_a_round_trip_applies_answers_and_acknowledges_on_both_sides(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway")
    processor = await sides.side("processor")
    await gateway.enqueue([request(1), request(2)])
    [sent] = (await gateway.link.export_once(at(0))).batches

    [received] = (await processor.link.import_once(at(1))).batches
    assert (received.name.batch_id, received.outcome) == (sent.batch_id, "applied")
    assert [kind for kind, _ in await processor.applied()] == ["request", "request"]
    await processor.enqueue([response(1)])  # the processor answers in its own transaction
    [answer] = (await processor.link.export_once(at(2))).batches
    assert (answer.kind, answer.record_count) == ("new", 2)  # the response, and the ack

    [back] = (await gateway.link.import_once(at(3))).batches
    assert back.outcome == "applied"
    assert [kind for kind, _ in await gateway.applied()] == ["response"]
    acknowledged = "SELECT acknowledged_at FROM link_outbound_batch WHERE batch_id = $1"
    assert await gateway.fetchval(acknowledged, sent.batch_id) == at(3)
    ids = "SELECT array_agg(record->>'id' ORDER BY record->>'id') FROM acknowledged"
    assert await gateway.fetchval(ids) == [str(request(1).id), str(request(2).id)]

    # The gateway's ack of the answer waits ack_delay_s, then closes the loop.
    assert (await gateway.link.export_once(at(4))).batches == []
    [ack] = (await gateway.link.export_once(at(5))).batches
    assert (ack.kind, ack.record_count) == ("new", 1)
    await processor.link.import_once(at(6))
    assert await processor.fetchval(acknowledged, answer.batch_id) == at(6)
    assert (await gateway.link.state(at(6))).unacknowledged_batches == 1  # the ack batch itself
    assert (await processor.link.state(at(6))).unacknowledged_batches == 0


async def test_two_idle_sides_exchange_one_heartbeat_per_interval_each(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway")
    processor = await sides.side("processor")
    sent: dict[str, Counter[str]] = {"gateway": Counter(), "processor": Counter()}
    for second in range(301):  # five minutes, one export window at a time
        for side, peer in ((gateway, processor), (processor, gateway)):
            report = await side.link.export_once(at(second))
            sent[side.name].update(batch.kind for batch in report.batches)
            await peer.link.import_once(at(second))
    # A heartbeat at 0, 30, ..., 300: acks of heartbeats never make batches of their own.
    assert sent == {"gateway": Counter(heartbeat=11), "processor": Counter(heartbeat=11)}
    for side in (gateway, processor):
        state = await side.link.state(at(300))
        assert state.unacknowledged_batches <= 1
        assert state.missing_batches == 0


async def test_run_imports_on_arrival_exports_on_its_window_and_stops(
    sides: SideFactory,
) -> None:
    # Sweeps are ten minutes apart: only file events can bring the batches in quickly.
    timings: dict[str, Any] = {"export_window_s": 0.05, "ack_delay_s": 0.1, "sweep_interval_s": 600}
    gateway = await sides.side("gateway", clock=utc_now, **timings)
    processor = await sides.side("processor", clock=utc_now, **timings)
    stop = asyncio.Event()
    runs = [asyncio.create_task(side.link.run(stop)) for side in (gateway, processor)]

    async def has_applied(side: Side, kind: str) -> bool:
        return [applied for applied, _ in await side.applied()] == [kind]

    try:
        await asyncio.sleep(0.3)  # both watching, their first passes done
        await gateway.enqueue([request(1)])
        await eventually(lambda: has_applied(processor, "request"), what="the request applied")
        await processor.enqueue([response(1)])
        await eventually(lambda: has_applied(gateway, "response"), what="the response applied")
        await eventually(lambda: all_acknowledged(processor), what="every batch acknowledged")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runs), timeout=10)
    assert list(gateway.settings.importing_dir.iterdir()) == []  # claim folders released


async def test_two_processes_of_one_side_running_together_apply_each_batch_once(
    sides: SideFactory,
) -> None:
    timings: dict[str, Any] = {"export_window_s": 0.02, "ack_delay_s": 0.05, "sweep_interval_s": 1}
    gateway = await sides.side("gateway", clock=utc_now, max_batch_records=3, **timings)
    first = await sides.side("processor", clock=utc_now, **timings)
    second = await sides.side("processor", url=first.url, clock=utc_now, **timings)
    stop = asyncio.Event()
    runs = [asyncio.create_task(side.link.run(stop)) for side in (gateway, first, second)]

    async def all_applied() -> bool:
        return len(await first.applied()) == 30

    try:
        for n in range(10):
            await gateway.enqueue([request(3 * n + i) for i in range(3)])
            await asyncio.sleep(0.01)
        await eventually(all_applied, what="every record applied")
        await eventually(lambda: all_acknowledged(gateway), what="every batch acknowledged")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runs), timeout=10)
    rows = await first.pool.fetch("SELECT record->>'id' FROM applied")
    assert len({row[0] for row in rows}) == 30  # none twice
    made = await gateway.fetchval("SELECT max(seq) FROM link_outbound_batch")
    assert await first.fetchval("SELECT count(*) FROM link_inbound_batch") == made


async def all_acknowledged(side: Side) -> bool:
    return (await side.link.state()).unacknowledged_batches == 0


async def test_committed_sees_each_import_pass_that_did_something_with_its_effects(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway", max_batch_records=2)
    processor = await sides.side("processor")
    await gateway.enqueue([request(n) for n in range(3)])
    await gateway.link.export_once(at(0))
    await processor.link.import_once(at(1))
    await processor.link.import_once(at(1.5))  # an empty pass
    [report] = processor.service.committed_reports
    assert [(batch.outcome, batch.effects) for batch in report.batches] == [
        ("applied", (2,)),
        ("applied", (1,)),
    ]
    assert report.effects() == [2, 1]


async def test_a_failing_committed_leaves_the_import_applied_and_audited(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway")
    processor = await sides.side("processor")

    async def down(report: object) -> None:
        raise ConnectionError("redis is down")

    processor.service.committed = down  # type: ignore[method-assign]
    await gateway.enqueue([request(1)])
    await gateway.link.export_once(at(0))
    [batch] = (await processor.link.import_once(at(1))).batches
    assert batch.outcome == "applied"
    assert await processor.fetchval("SELECT count(*) FROM applied") == 1
    audited = "SELECT outcome FROM audit_log WHERE action = 'batch_imported' AND target = $1"
    assert await processor.fetchval(audited, batch.name.file_name) == "applied"


async def test_both_sides_list_what_they_sent_and_received(sides: SideFactory) -> None:
    gateway = await sides.side("gateway")
    processor = await sides.side("processor")
    await gateway.enqueue([request(1), request(2)])
    [sent] = (await gateway.link.export_once(at(0))).batches
    await processor.link.import_once(at(1))
    async with gateway.pool.acquire() as conn:
        [outbound] = (await list_outbound(conn)).items
    async with processor.pool.acquire() as conn:
        [inbound] = (await list_inbound(conn)).items
        after = encode_cursor((inbound.source, inbound.seq))
        assert (await list_inbound(conn, cursor=after)).items == []
    assert (outbound.batch_id, outbound.seq, outbound.record_count) == (sent.batch_id, 1, 2)
    assert outbound.publish_count == 1
    assert outbound.acknowledged_at is None
    assert (inbound.batch_id, inbound.source, inbound.times_received) == (
        sent.batch_id,
        "request-net",
        1,
    )


async def test_the_link_audits_batches_imported_quarantined_and_exported_but_not_heartbeats(
    sides: SideFactory, key_dir: Path
) -> None:
    gateway = await sides.side("gateway")
    processor = await sides.side("processor")
    await gateway.link.export_once(at(0))  # a heartbeat: not audited
    await gateway.enqueue([request(1)])
    [sent] = (await gateway.link.export_once(at(100))).batches
    forged = publish(
        processor.settings.inbox_dir, load_signing_key(key_dir / "intruder.key"), [request(2)], 9
    )
    report = await processor.link.import_once(at(101))
    outcomes = {batch.name.file_name: batch.outcome for batch in report.batches}
    assert outcomes[forged.name] == "quarantined"
    exported = await gateway.pool.fetch("SELECT action, target, details FROM audit_log")
    assert [(row["action"], row["target"]) for row in exported] == [
        ("batch_exported", str(sent.batch_id))
    ]
    assert msgspec.json.decode(exported[0]["details"]) == {"seq": 2, "kind": "new", "records": 1}
    imported = await processor.pool.fetch("SELECT action, target, outcome FROM audit_log")
    assert sorted((row["action"], row["target"], row["outcome"]) for row in imported) == sorted(
        [
            ("batch_imported", name, outcome)
            for name, outcome in outcomes.items()
            if outcome != "quarantined"
        ]
        + [("batch_quarantined", forged.name, "quarantined")]
    )

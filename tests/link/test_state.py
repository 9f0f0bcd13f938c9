"""Link state: gaps in the peer's sequence, our unacknowledged batches, and the gauges."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

from airlink.state import MISSING_SAMPLE, read_link_state
from batchformat import load_signing_key
from tests.link.conftest import SideFactory, at, publish, request


def gauge(name: str, peer: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"peer": peer})


async def test_missing_batches_are_the_seqs_below_the_highest_that_never_arrived(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    inbox = processor.settings.inbox_dir

    async def arrive(*seqs: int) -> tuple[int, tuple[int, ...]]:
        for seq in seqs:
            publish(inbox, key, [request(seq)], seq)
        await processor.link.import_once(at(0))
        state = await processor.link.state(at(0))
        return state.missing_batches, state.missing_seqs

    assert await arrive(1, 2, 5, 7) == (3, (3, 4, 6))
    assert await arrive(4) == (2, (3, 6))
    assert await arrive(3) == (1, (6,))
    assert await arrive(6) == (0, ())
    assert await processor.fetchval("SELECT inbound_contiguous_seq FROM link_peer") == 7
    assert gauge("link_missing_batches", "request-net") == 0


async def test_the_gap_gauge_shows_missing_seqs(sides: SideFactory, key_dir: Path) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    for seq in (1, 4):
        publish(processor.settings.inbox_dir, key, [], seq)
    await processor.link.import_once(at(0))
    await processor.link.state(at(10))
    assert gauge("link_missing_batches", "request-net") == 2
    assert gauge("link_last_inbound_age_seconds", "request-net") == 10


async def test_unacknowledged_batches_are_counted_with_the_age_of_the_oldest(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway")
    await gateway.enqueue([request(1)])
    [first] = (await gateway.link.export_once(at(0))).batches
    await gateway.link.export_once(at(30))
    state = await gateway.link.state(at(40))
    assert (state.unacknowledged_batches, state.oldest_unacknowledged_age_s) == (2, 40.0)
    assert gauge("link_unacknowledged_batches", "response-net") == 2
    assert gauge("link_oldest_unacknowledged_age_seconds", "response-net") == 40
    ack = "UPDATE link_outbound_batch SET acknowledged_at = $2 WHERE batch_id = $1"
    await gateway.pool.execute(ack, first.batch_id, at(41))
    state = await gateway.link.state(at(50))
    assert (state.unacknowledged_batches, state.oldest_unacknowledged_age_s) == (1, 20.0)


async def test_a_side_that_never_heard_from_its_peer_reports_an_infinite_age(
    sides: SideFactory,
) -> None:
    gateway = await sides.side("gateway")
    state = await read_link_state(gateway.pool, "response-net", at(0))
    assert state.last_inbound_at is None
    assert state.is_stale(90)
    await gateway.link.state(at(0))
    assert gauge("link_last_inbound_age_seconds", "response-net") == float("inf")


HUGE_SEQ = 999_999_999_999


async def test_a_batch_too_far_ahead_of_the_highest_seq_is_quarantined_with_its_reason(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    key = load_signing_key(key_dir / "request-net-1.key")
    publish(processor.settings.inbox_dir, key, [request(1)], 1)
    publish(processor.settings.inbox_dir, key, [request(2)], HUGE_SEQ)
    report = await processor.link.import_once(at(0))
    assert [(b.name.seq, b.outcome, b.reason) for b in report.batches] == [
        (1, "applied", None),
        (HUGE_SEQ, "quarantined", "seq_too_far_ahead"),
    ]
    assert len(processor.quarantined()) == 1
    state = await processor.link.state(at(0))
    assert (state.missing_batches, state.missing_seqs) == (0, ())


async def test_a_huge_gap_is_counted_without_enumerating_it(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor", max_seq_jump=HUGE_SEQ)
    key = load_signing_key(key_dir / "request-net-1.key")
    for seq in (1, 3, HUGE_SEQ):
        publish(processor.settings.inbox_dir, key, [], seq)
    await processor.link.import_once(at(0))
    started = time.perf_counter()
    state = await processor.link.state(at(0))
    # generate_series over the gap took ~11 s for a jump of 10^8; this one is 10^12.
    assert time.perf_counter() - started < 2.0
    assert state.missing_batches == HUGE_SEQ - 3
    assert state.missing_seqs == (2, *range(4, 4 + MISSING_SAMPLE - 1))

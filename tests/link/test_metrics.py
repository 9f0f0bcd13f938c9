"""The link's counters: batches exported and imported, records, quarantines."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from airlink import metrics
from batchformat import load_signing_key
from tests.link.conftest import SideFactory, at, publish, request


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_metric_of_the_spec_is_declared() -> None:
    names = {
        next(iter(metric.describe())).name
        for metric in (
            metrics.LAST_INBOUND_AGE,
            metrics.MISSING_BATCHES,
            metrics.UNACKNOWLEDGED_BATCHES,
            metrics.OLDEST_UNACKNOWLEDGED_AGE,
            metrics.BATCHES_EXPORTED,
            metrics.BATCHES_IMPORTED,
            metrics.RECORDS,
            metrics.QUARANTINED,
        )
    }
    assert names == {
        "link_last_inbound_age_seconds",
        "link_missing_batches",
        "link_unacknowledged_batches",
        "link_oldest_unacknowledged_age_seconds",
        "link_batches_exported",
        "link_batches_imported",
        "link_records",
        "link_quarantined",
    }  # counters gain their _total suffix when exposed


async def test_exports_count_batches_by_kind_and_records_by_kind(sides: SideFactory) -> None:
    gateway = await sides.side("gateway", resend_after_s=60)
    peer = {"peer": "response-net"}
    before = {
        kind: value("link_batches_exported_total", **peer, kind=kind)
        for kind in ("new", "heartbeat", "resend")
    }
    records_before = value("link_records_total", **peer, direction="exported", kind="request")
    await gateway.enqueue([request(1), request(2)])
    await gateway.link.export_once(at(0))
    await gateway.link.export_once(at(30))
    await gateway.link.export_once(at(61))
    after = {kind: value("link_batches_exported_total", **peer, kind=kind) for kind in before}
    assert {kind: after[kind] - before[kind] for kind in before} == {
        "new": 1,
        "heartbeat": 2,  # at 30 and at 60 + 1
        "resend": 1,  # the first batch; the heartbeat of 30 is not due yet
    }
    records = value("link_records_total", **peer, direction="exported", kind="request")
    assert records - records_before == 2  # resends are not counted again


async def test_imports_count_outcomes_records_and_quarantine_reasons(
    sides: SideFactory, key_dir: Path
) -> None:
    processor = await sides.side("processor")
    peer = {"peer": "request-net"}
    key = load_signing_key(key_dir / "request-net-1.key")
    outcomes = ("applied", "duplicate", "quarantined")
    before = {o: value("link_batches_imported_total", **peer, outcome=o) for o in outcomes}
    imported = value("link_records_total", **peer, direction="imported", kind="request")
    bad_key = value("link_quarantined_total", **peer, reason="destination_mismatch")
    inbox = processor.settings.inbox_dir
    path = publish(inbox, key, [request(1), request(2)], 1)
    data = path.read_bytes()
    await processor.link.import_once(at(0))
    path.write_bytes(data)
    publish(inbox, key, [request(3)], 2, destination="elsewhere")
    await processor.link.import_once(at(1))
    after = {o: value("link_batches_imported_total", **peer, outcome=o) for o in outcomes}
    assert {o: after[o] - before[o] for o in outcomes} == {
        "applied": 1,
        "duplicate": 1,
        "quarantined": 1,
    }
    assert value("link_records_total", **peer, direction="imported", kind="request") == imported + 2
    reason = value("link_quarantined_total", **peer, reason="destination_mismatch")
    assert reason == bad_key + 1

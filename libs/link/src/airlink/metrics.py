"""Every metric of the link, in one place (the table in docs/link-protocol.md)."""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter

from servicekit.metrics import declare_gauge

ExportKind = Literal["new", "resend", "heartbeat"]
ImportOutcome = Literal["applied", "duplicate", "quarantined"]
Direction = Literal["exported", "imported"]

PEER: Final = ("peer",)

# Every process computes these from the same database: the most recent value is the truth.
LAST_INBOUND_AGE = declare_gauge(
    "link_last_inbound_age_seconds",
    "Seconds since the last batch from the peer (+Inf before the first one).",
    multiprocess_mode="mostrecent",
    labelnames=PEER,
)
MISSING_BATCHES = declare_gauge(
    "link_missing_batches",
    "Peer sequence numbers below the highest seen that never arrived.",
    multiprocess_mode="mostrecent",
    labelnames=PEER,
)
UNACKNOWLEDGED_BATCHES = declare_gauge(
    "link_unacknowledged_batches",
    "Published batches the peer has not acknowledged.",
    multiprocess_mode="mostrecent",
    labelnames=PEER,
)
OLDEST_UNACKNOWLEDGED_AGE = declare_gauge(
    "link_oldest_unacknowledged_age_seconds",
    "Seconds since the oldest unacknowledged batch was first published (0 when none).",
    multiprocess_mode="mostrecent",
    labelnames=PEER,
)
BATCHES_EXPORTED = Counter(
    "link_batches_exported_total",
    "Batches published for the peer, by kind: new, resend, heartbeat.",
    ("peer", "kind"),
)
BATCHES_IMPORTED = Counter(
    "link_batches_imported_total",
    "Batches from the peer, by outcome: applied, duplicate, quarantined.",
    ("peer", "outcome"),
)
RECORDS = Counter(
    "link_records_total",
    "Records of new batches exported, and of applied batches imported, by record kind.",
    ("peer", "direction", "kind"),
)
QUARANTINED = Counter(
    "link_quarantined_total",
    "Batches from the peer rejected and quarantined, by reason.",
    ("peer", "reason"),
)


def count_exported(peer: str, kind: ExportKind, record_kinds: dict[str, int]) -> None:
    """Count one published batch (and, unless it is a resend, its records)."""
    BATCHES_EXPORTED.labels(peer, kind).inc()
    if kind != "resend":
        _count_records(peer, "exported", record_kinds)


def count_imported(peer: str, outcome: ImportOutcome, record_kinds: dict[str, int]) -> None:
    """Count one inbound batch (and, if it was applied, its records)."""
    BATCHES_IMPORTED.labels(peer, outcome).inc()
    if outcome == "applied":
        _count_records(peer, "imported", record_kinds)


def count_quarantined(peer: str, reason: str) -> None:
    """Count one rejected inbound batch."""
    BATCHES_IMPORTED.labels(peer, "quarantined").inc()
    QUARANTINED.labels(peer, reason).inc()


def _count_records(peer: str, direction: Direction, record_kinds: dict[str, int]) -> None:
    for kind, count in record_kinds.items():
        RECORDS.labels(peer, direction, kind).inc(count)

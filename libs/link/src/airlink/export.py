"""The exporter: makes batches from outbox items, publishes them, resends the unacknowledged.

Each pass (`Exporter.export_once`), in this order:

1. publishes batches that were created but never published (a crash between the commit of
   a batch and its publication leaves such rows);
2. publishes again, identical, every batch unacknowledged for `resend_after_s`;
3. makes new batches while the when-to-send rules say so, and publishes them.

Several exporters may run against one database: the peer row lock makes them take turns at
creating batches, and each publication holds its batch row (`FOR UPDATE SKIP LOCKED`), so a
batch is never published by two exporters at once.
"""

# ruff: noqa: S608 - the SQL interpolates only the constant names of airlink.schema
from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import structlog

from airlink import metrics
from airlink.render import OUTBOUND_COLUMNS, OutboundBatchRow, Rendered, render_batch
from airlink.schema import OUTBOUND_BATCH, OUTBOX_GROUP, PEER, AuditAction
from airlink.settings import LinkSettings
from batchformat import RecipientKeys, SigningKey
from servicekit import audit
from servicekit.database import Connection, Pool

# A resend pass is bounded so that a long outage (thousands of unacknowledged heartbeats)
# does not turn one pass into minutes of rendering; the rest follow on the next passes.
RESENDS_PER_PASS: Final = 100

Reason = Literal["new", "heartbeat"]

log = structlog.get_logger("airlink.export")

_LOCK_PEER = f"SELECT next_seq, last_batch_at FROM {PEER} WHERE peer = $1 FOR UPDATE"
_WHAT_TO_SEND = f"""
    SELECT
        EXISTS (SELECT 1 FROM {OUTBOX_GROUP}
                WHERE batched_count < item_count AND business),
        EXISTS (SELECT 1 FROM {OUTBOX_GROUP}
                WHERE batched_count < item_count AND acks_business_batch AND created_at <= $1)
"""
# Items are chosen by "in no batch yet" (a group's items from batched_count on), never by
# "above the last exported group id": group ids are allocated at INSERT but become visible
# at COMMIT, so a transaction that commits late holds a group id below ones already
# exported. A high-water mark would skip its items for ever; here the next batch takes them.
_PENDING_GROUPS = f"""
    SELECT group_id, batched_count, item_count, business FROM {OUTBOX_GROUP}
    WHERE batched_count < item_count ORDER BY group_id LIMIT $1
"""
_NEXT_SEQ = f"UPDATE {PEER} SET next_seq = next_seq + 1, last_batch_at = $2 WHERE peer = $1"
_CREATE_BATCH = f"""
    INSERT INTO {OUTBOUND_BATCH} (batch_id, peer, source, seq, created_at, reason,
        slice_groups, slice_starts, slice_stops, record_count, business_count)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""
_MARK_BATCHED = f"""
    UPDATE {OUTBOX_GROUP} AS g SET batched_count = slice.stop
    FROM unnest($1::bigint[], $2::integer[]) AS slice (group_id, stop)
    WHERE g.group_id = slice.group_id
"""
_NEXT_UNPUBLISHED = f"""
    SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_BATCH}
    WHERE peer = $1 AND published_at IS NULL
    ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED
"""
_NEXT_RESEND = f"""
    SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_BATCH}
    WHERE peer = $1 AND acknowledged_at IS NULL AND published_at IS NOT NULL
      AND last_published_at <= $2
    ORDER BY last_published_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED
"""
_MARK_PUBLISHED = f"""
    UPDATE {OUTBOUND_BATCH}
    SET published_at = coalesce(published_at, $2), last_published_at = $2,
        publish_count = publish_count + 1, sha256 = $3, size_bytes = $4
    WHERE batch_id = $1
"""


@dataclass(slots=True)
class _Slices:
    """The parts of pending groups one batch takes: items [start, stop) of each group."""

    groups: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    record_count: int = 0
    business_count: int = 0


def _cut(groups: Sequence[Any], max_records: int) -> _Slices:
    """Take pending items group by group, in group order, up to `max_records`."""
    slices = _Slices()
    for group in groups:
        room = max_records - slices.record_count
        if room <= 0:
            break
        start = group["batched_count"]
        stop = min(group["item_count"], start + room)
        slices.groups.append(group["group_id"])
        slices.starts.append(start)
        slices.stops.append(stop)
        slices.record_count += stop - start
        if group["business"]:
            slices.business_count += stop - start
    return slices


@dataclass(frozen=True, slots=True)
class ExportedBatch:
    """One publication of a batch during a pass."""

    batch_id: uuid.UUID
    seq: int
    kind: metrics.ExportKind
    record_count: int
    sha256: str


@dataclass(slots=True)
class ExportReport:
    """What one export pass published, in order."""

    batches: list[ExportedBatch] = field(default_factory=list)

    def of_kind(self, kind: metrics.ExportKind) -> list[ExportedBatch]:
        """The publications of one kind."""
        return [batch for batch in self.batches if batch.kind == kind]


class Exporter:
    """Makes and publishes this side's batches for its peer."""

    def __init__(
        self,
        pool: Pool,
        settings: LinkSettings,
        signing_key: SigningKey,
        encrypt_to: RecipientKeys | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._key = signing_key
        self._encrypt_to = encrypt_to
        self._peer = settings.peer_network_id

    async def export_once(self, now: datetime) -> ExportReport:
        """Run one pass: recover, resend, then make and publish new batches."""
        report = ExportReport()
        await self._publish_unpublished(now, report)
        await self._resend_due(now, report)
        while (made := await self._make_batch(now)) is not None:
            await self._publish_unpublished(now, report)
            # A full batch means more may be waiting; a partial one leaves the rest of the
            # window's items to the next pass, so batches stay few and large.
            if made < self._settings.max_batch_records:
                break
        return report

    async def _make_batch(self, now: datetime) -> int | None:
        """Create the next batch if the rules say so; return its record count."""
        async with self._pool.acquire() as conn, conn.transaction():
            peer = await conn.fetchrow(_LOCK_PEER, self._peer)
            assert peer is not None, "the peer row is created before the first pass"
            reason = await self._reason(conn, peer["last_batch_at"], now)
            if reason is None:
                return None
            max_records = self._settings.max_batch_records
            slices = _cut(await conn.fetch(_PENDING_GROUPS, max_records), max_records)
            if slices.business_count:  # committed since the rules were checked
                reason = "new"
            batch_id = uuid.uuid4()
            seq = peer["next_seq"]
            await conn.execute(_NEXT_SEQ, self._peer, now)
            await conn.execute(
                _CREATE_BATCH,
                *(batch_id, self._peer, self._settings.network_id, seq, now, reason),
                *(slices.groups, slices.starts, slices.stops),
                *(slices.record_count, slices.business_count),
            )
            if slices.groups:
                await conn.execute(_MARK_BATCHED, slices.groups, slices.stops)
        log.debug("batch_created", batch_id=str(batch_id), seq=seq, reason=reason)
        return slices.record_count

    async def _reason(
        self, conn: Connection, last_batch_at: datetime | None, now: datetime
    ) -> Reason | None:
        """The when-to-send rules: business items, due acks of business batches, heartbeat."""
        settings = self._settings
        ack_due = now - timedelta(seconds=settings.ack_delay_s)
        row = await conn.fetchrow(_WHAT_TO_SEND, ack_due)
        assert row is not None
        business_waiting, business_ack_due = row
        if business_waiting or business_ack_due:
            return "new"
        # Acks of ack-only batches (heartbeats) wait for this: two idle sides then send one
        # heartbeat per interval each, instead of acknowledging each other's acks for ever.
        idle_since = timedelta(seconds=settings.heartbeat_interval_s)
        if last_batch_at is None or now - last_batch_at >= idle_since:
            return "heartbeat"
        return None

    async def _publish_unpublished(self, now: datetime, report: ExportReport) -> None:
        while await self._publish_next(_NEXT_UNPUBLISHED, (self._peer,), now, report):
            pass

    async def _resend_due(self, now: datetime, report: ExportReport) -> None:
        due = now - timedelta(seconds=self._settings.resend_after_s)
        for _ in range(RESENDS_PER_PASS):
            if not await self._publish_next(_NEXT_RESEND, (self._peer, due), now, report):
                return

    async def _publish_next(
        self, query: str, args: tuple[object, ...], now: datetime, report: ExportReport
    ) -> bool:
        """Publish the first batch `query` selects and locks; False when there is none."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(query, *args)
            if row is None:
                return False
            batch = OutboundBatchRow.from_record(row)
            started = time.perf_counter()
            rendered = await render_batch(
                conn, batch, self._settings.outbox_dir, self._key, self._encrypt_to
            )
            published = rendered.published
            await conn.execute(
                _MARK_PUBLISHED, batch.batch_id, now, published.content_sha256, published.size_bytes
            )
            kind = batch.kind
            if kind != "heartbeat":  # heartbeats are too many to audit
                details = {"seq": batch.seq, "kind": kind, "records": published.record_count}
                target = str(batch.batch_id)
                await audit.record(
                    conn, audit.SYSTEM, AuditAction.BATCH_EXPORTED, target=target, details=details
                )
        self._record_publication(batch, rendered, started)
        report.batches.append(
            ExportedBatch(batch.batch_id, batch.seq, kind, published.record_count, published.sha256)
        )
        return True

    def _record_publication(
        self, batch: OutboundBatchRow, rendered: Rendered, started: float
    ) -> None:
        """Log and count a publication."""
        kind = batch.kind
        published = rendered.published
        if batch.sha256 is not None and batch.sha256 != published.content_sha256:
            # Rendering is a pure function of the rows; a different digest means the rows
            # changed after the first publication, and the peer may see two versions.
            log.error("batch_rerender_differs", batch_id=str(batch.batch_id), seq=batch.seq)
        metrics.count_exported(self._peer, kind, rendered.record_kinds)
        log.info(
            "batch_published",
            batch_id=str(batch.batch_id),
            seq=batch.seq,
            peer=self._peer,
            kind=kind,
            records=published.record_count,
            bytes=published.size_bytes,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

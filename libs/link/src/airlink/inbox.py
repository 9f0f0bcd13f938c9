"""The importer: claims the peer's batches from the inbox and applies each in one transaction.

For each ready batch, in sequence order (docs/link-protocol.md, "Import"): claim it into
this process's folder under `inbox/.importing/`; in one transaction, stream it through the
verifier and hand its records to the service (`LinkService.apply`) in chunks; once the
trailer checked out, record the batch, queue its ack, apply the acks it carries, write its
audit row, and commit; then move the file to `inbox/archive/`. A rejected batch is rolled
back, audited and quarantined. A batch seen before is verified, acknowledged again, audited
and archived, never applied twice.
"""

# ruff: noqa: S608 - the SQL interpolates only the constant names of airlink.schema
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar, cast

import msgspec
import structlog

from airlink import metrics
from airlink.encryption import PLAINTEXT, LinkEncryption
from airlink.outbox import queue_ack, sent_records
from airlink.records import Ack
from airlink.schema import INBOUND_BATCH, OUTBOUND_BATCH, PEER, AuditAction
from airlink.settings import LinkSettings
from batchformat import (
    BatchName,
    BatchReader,
    BatchRejected,
    DropZone,
    Expectations,
    Header,
    IgnoredEntry,
    IgnoredKind,
    RejectReason,
    TrustedKeys,
)
from batchformat.claims import ClaimFolder
from batchformat.dropzone import check_folder_mode
from batchformat.fsops import open_target_dir, rename_noreplace
from servicekit import audit
from servicekit.database import Connection, Pool

if TYPE_CHECKING:
    from airlink.service import LinkService

CHUNK_RECORDS: Final = 5_000
_EXPECTED: Final = frozenset({IgnoredKind.IN_PROGRESS, IgnoredKind.HIDDEN})

Effect = TypeVar("Effect")
Outcome = Literal["applied", "duplicate", "quarantined", "failed"]

log = structlog.get_logger("airlink.import")


@dataclass(frozen=True, slots=True)
class ImportedBatch(Generic[Effect]):
    """What became of one claimed batch; `effects`: what `apply` returned, chunk by chunk."""

    name: BatchName
    outcome: Outcome
    records: int = 0
    reason: str | None = None  # the rejection code of a quarantined batch
    effects: tuple[Effect, ...] = ()


@dataclass(slots=True)
class ImportReport(Generic[Effect]):
    """What one import pass did, in order."""

    batches: list[ImportedBatch[Effect]] = field(default_factory=list)

    def effects(self) -> list[Effect]:
        """The effects of every batch applied, in order."""
        return [effect for batch in self.batches for effect in batch.effects]


class _LostRace(Exception):
    """Another process recorded the same batch while this one was applying it."""


@dataclass(slots=True)
class _Applied(Generic[Effect]):
    header: Header
    record_kinds: Counter[str]
    business: int  # records other than acks
    acks: list[Ack]
    effects: list[Effect]


_HIGHEST_SEEN = f"SELECT inbound_max_seq FROM {PEER} WHERE peer = $1"
_SEEN = f"SELECT business_count FROM {INBOUND_BATCH} WHERE source = $1 AND batch_id = $2"
_RECORD_BATCH = f"""
    INSERT INTO {INBOUND_BATCH} (source, batch_id, seq, created_at, record_count,
                                    business_count, first_received_at, last_received_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
    ON CONFLICT (source, batch_id) DO NOTHING
    RETURNING true
"""
_SEEN_AGAIN = f"""
    UPDATE {INBOUND_BATCH}
    SET last_received_at = greatest(last_received_at, $3), times_received = times_received + 1
    WHERE source = $1 AND batch_id = $2
"""
# Taken last, after the rows the batch acknowledges: every importer locks in that order.
_PEER_INBOUND = f"""
    UPDATE {PEER}
    SET last_inbound_at = greatest(last_inbound_at, $2),
        inbound_max_seq = greatest(inbound_max_seq, $3)
    WHERE peer = $1
    RETURNING inbound_contiguous_seq
"""
# Runs under the peer row lock, so it sees every batch committed before and none after
# (those wait for the lock and advance the prefix themselves).
_ADVANCE_CONTIGUOUS = f"""
    UPDATE {PEER} SET inbound_contiguous_seq = (
        SELECT min(b.seq) FROM {INBOUND_BATCH} AS b
        WHERE b.source = $1 AND b.seq > $2 AND NOT EXISTS (
            SELECT 1 FROM {INBOUND_BATCH} AS n WHERE n.source = $1 AND n.seq = b.seq + 1
        )
    )
    WHERE peer = $1
"""
# Sorted row locks: two importers acknowledging overlapping batches cannot deadlock. An
# ack also proves a publication whose marking a crash may have lost.
_ACKNOWLEDGE = f"""
    WITH acked AS (
        SELECT o.batch_id FROM {OUTBOUND_BATCH} AS o
        JOIN unnest($2::uuid[], $3::bigint[]) AS a (batch_id, seq)
          ON a.batch_id = o.batch_id AND a.seq = o.seq
        WHERE o.peer = $1 AND o.acknowledged_at IS NULL
        ORDER BY o.batch_id
        FOR UPDATE OF o
    )
    UPDATE {OUTBOUND_BATCH} AS o
    SET acknowledged_at = $4, published_at = coalesce(o.published_at, $4),
        last_published_at = coalesce(o.last_published_at, $4)
    FROM acked WHERE o.batch_id = acked.batch_id
    RETURNING o.batch_id
"""


class Importer(Generic[Effect]):
    """Imports the peer's batches from the inbox into the database."""

    def __init__(
        self,
        pool: Pool,
        settings: LinkSettings,
        peer_keys: TrustedKeys | None,
        service: LinkService[Any, Any, Effect],
        encryption: LinkEncryption = PLAINTEXT,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._keys = peer_keys
        self._encryption = encryption
        self._record_type = cast("Any", service.inbound_records) | Ack
        self._service = service
        self._sent: msgspec.json.Decoder[Any] | None = None
        if service.sent_records is not None:
            self._sent = msgspec.json.Decoder(cast("Any", service.sent_records))
        self._peer = settings.peer_network_id
        self._expect = Expectations(source=self._peer, destination=settings.network_id)
        self._zone = DropZone(settings.inbox_dir, settings.quarantine_dir)
        self.claims = ClaimFolder(settings.importing_dir, f"{socket.gethostname()}-{os.getpid()}")
        self._folders_ready = False
        self._strays: set[str] = set()
        self._own_folders = {
            settings.archive_dir.name,
            settings.quarantine_dir.name,
            settings.importing_dir.name,
        }

    async def import_once(self, now: datetime) -> ImportReport[Effect]:
        """Import every batch waiting: our unfinished claims and orphans first, then the inbox."""
        report: ImportReport[Effect] = ImportReport()
        await asyncio.to_thread(self._open_claims)
        for path in await asyncio.to_thread(self.claims.batches):
            report.batches.append(await self._import_claimed(path, now))
        scan = await asyncio.to_thread(self._zone.scan)
        self._report_strays(scan.ignored)
        for ready in scan.ready:
            claimed = await asyncio.to_thread(self._zone.claim, ready, self.claims.path)
            if claimed is not None:  # else another importer took it
                report.batches.append(await self._import_claimed(claimed, now))
        return report

    def close(self) -> None:
        """Release this process's claim folder (removed if empty)."""
        self.claims.close()

    def _report_strays(self, ignored: Sequence[IgnoredEntry]) -> None:
        """Log, once per name, what does not belong in an inbox (never touched, never read)."""
        for entry in ignored:
            if entry.kind in _EXPECTED or entry.name in self._own_folders | self._strays:
                continue
            self._strays.add(entry.name)
            log.warning("inbox_entry_ignored", peer=self._peer, name=entry.name, kind=entry.kind)

    def _open_claims(self) -> None:
        # Each pass: a folder made world-writable while we run is refused from then on.
        check_folder_mode(self._settings.inbox_dir)
        if not self._folders_ready:
            self._settings.archive_dir.mkdir(parents=True, exist_ok=True)
            # Refused at start too, not only at the first move (UnsafeTargetFolder).
            for folder in (self._settings.archive_dir, self._settings.quarantine_dir):
                if folder.is_symlink() or folder.exists():
                    os.close(open_target_dir(folder))
            if not self.claims.is_open:
                self.claims.open()
            self._folders_ready = True
        adopted = self.claims.adopt_orphans()
        if adopted:
            log.warning("import_orphans_adopted", peer=self._peer, batches=len(adopted))

    async def _import_claimed(self, path: Path, now: datetime) -> ImportedBatch[Effect]:
        name = BatchName.parse(path.name)
        assert name is not None, "only batch names are claimed"
        started = time.perf_counter()
        fields = {"batch_id": str(name.batch_id), "seq": name.seq, "peer": self._peer}
        try:
            imported = await self._apply_claimed(path, name, now)
        except BatchRejected as rejection:
            reason = str(rejection.reason)
            quarantined: ImportedBatch[Effect] = ImportedBatch(name, "quarantined", reason=reason)
            # Audited before the file moves: if either fails, the pass stops with the file
            # still claimed, and the next pass rejects, audits and moves it again.
            async with self._pool.acquire() as conn:
                await _audit(conn, quarantined)
            await asyncio.to_thread(self._zone.quarantine, path, rejection)
            metrics.count_quarantined(self._peer, reason)
            log.warning("batch_quarantined", **fields, **rejection.as_dict())
            return quarantined
        except Exception as exc:
            # A database or disk failure, or a handler that raised: everything was rolled
            # back, the file stays in our claim folder and the next pass tries it again. The
            # batches after it still go through (a gap shows in link_missing_batches).
            log.error(
                "batch_import_failed", **fields, error=f"{type(exc).__name__}: {exc}", exc_info=exc
            )
            return ImportedBatch(name, "failed")
        await asyncio.to_thread(self._archive, path)
        log.info(
            "batch_imported",
            **fields,
            outcome=imported.outcome,
            records=imported.records,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return imported

    async def _apply_claimed(
        self, path: Path, name: BatchName, now: datetime
    ) -> ImportedBatch[Effect]:
        """Apply or re-acknowledge one batch; raise BatchRejected after rolling back."""
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return await self._apply_in_transaction(conn, path, name, now)
            except _LostRace:
                async with conn.transaction():  # now recorded: acknowledged as a duplicate
                    return await self._apply_in_transaction(conn, path, name, now)

    async def _apply_in_transaction(
        self, conn: Connection, path: Path, name: BatchName, now: datetime
    ) -> ImportedBatch[Effect]:
        reader = BatchReader(
            path,
            self._keys,
            self._record_type,
            expect=self._expect,
            decryption_keys=self._encryption.decryption_keys,
            accept_unencrypted=self._encryption.accept_unencrypted,
        )
        business_count = await conn.fetchval(_SEEN, self._peer, name.batch_id)
        if business_count is not None:
            verified = await asyncio.to_thread(reader.verify)
            await conn.execute(_SEEN_AGAIN, self._peer, name.batch_id, now)
            await self._acknowledge(conn, name, business_count > 0, now)
            metrics.count_imported(self._peer, "duplicate", {})
            return await _audit(conn, ImportedBatch(name, "duplicate", verified.record_count))
        applied = await self._stream_into_service(conn, reader)
        assert reader.result is not None, "the stream ends only after the trailer verified"
        # After the signature verified, so a forged batch is reported as forged; the
        # transaction rolls back what the handler applied.
        await self._check_seq_jump(conn, name)
        header, count = applied.header, reader.result.record_count
        recorded = await conn.fetchval(
            _RECORD_BATCH,
            *(self._peer, header.batch_id, header.seq, header.created_at),
            *(count, applied.business, now),
        )
        if not recorded:
            raise _LostRace
        await self._apply_acks(conn, applied.acks, now)
        await self._acknowledge(conn, name, applied.business > 0, now)
        metrics.count_imported(self._peer, "applied", dict(applied.record_kinds))
        batch = ImportedBatch(name, "applied", count, effects=tuple(applied.effects))
        return await _audit(conn, batch)

    async def _check_seq_jump(self, conn: Connection, name: BatchName) -> None:
        """Refuse a new batch whose seq lies too far beyond the highest seen from the peer."""
        highest = await conn.fetchval(_HIGHEST_SEEN, self._peer) or 0
        limit = self._settings.max_seq_jump
        if name.seq - highest > limit:
            raise BatchRejected(
                RejectReason.SEQ_TOO_FAR_AHEAD,
                f"seq {name.seq} is more than {limit} beyond the highest seen ({highest})",
            )

    async def _stream_into_service(self, conn: Connection, reader: BatchReader) -> _Applied[Effect]:
        types: Counter[type[Any]] = Counter()
        acks: list[Ack] = []
        effects: list[Effect] = []
        async with contextlib.aclosing(_chunks(reader)) as chunks:
            async for chunk in chunks:
                chunk_types = Counter(map(type, chunk))
                types.update(chunk_types)
                business = chunk
                if Ack in chunk_types:
                    acks += [record for record in chunk if type(record) is Ack]
                    business = [record for record in chunk if type(record) is not Ack]
                if business:
                    assert reader.header is not None
                    effects.append(await self._service.apply(conn, business, reader.header))
        assert reader.header is not None
        kinds = {type_.__struct_config__.tag: n for type_, n in types.items()}
        business_total = sum(n for type_, n in types.items() if type_ is not Ack)
        return _Applied(reader.header, Counter(kinds), business_total, acks, effects)

    async def _apply_acks(self, conn: Connection, acks: list[Ack], now: datetime) -> None:
        if not acks:
            return
        batch_ids = [ack.batch_id for ack in acks]
        seqs = [ack.seq for ack in acks]
        rows = await conn.fetch(_ACKNOWLEDGE, self._peer, batch_ids, seqs, now)
        if rows:
            acknowledged = [row[0] for row in rows]
            if self._sent is not None:
                sent = await sent_records(conn, acknowledged, self._sent)
                await self._service.acknowledged(conn, sent)
            log.debug("batches_acknowledged", peer=self._peer, batches=len(acknowledged))

    async def _acknowledge(
        self, conn: Connection, name: BatchName, business: bool, now: datetime
    ) -> None:
        """Queue the batch's ack and note that the peer is alive."""
        await queue_ack(conn, name.batch_id, name.seq, business=business, now=now)
        contiguous = await conn.fetchval(_PEER_INBOUND, self._peer, now, name.seq)
        if name.seq == contiguous + 1:
            await conn.execute(_ADVANCE_CONTIGUOUS, self._peer, contiguous)

    def _archive(self, path: Path) -> None:
        target = self._settings.archive_dir / path.name
        try:
            rename_noreplace(path, target)
        except FileExistsError:
            # An earlier copy of this batch (same id, verified, so the same bytes) is there.
            path.unlink()


async def _audit(conn: Connection, batch: ImportedBatch[Effect]) -> ImportedBatch[Effect]:
    """Write the batch's audit row (in the caller's transaction); return the batch."""
    quarantined = batch.outcome == "quarantined"
    action = AuditAction.BATCH_QUARANTINED if quarantined else AuditAction.BATCH_IMPORTED
    details = {"records": batch.records, "reason": batch.reason}
    target, outcome = batch.name.file_name, batch.outcome
    await audit.record(conn, audit.SYSTEM, action, target=target, outcome=outcome, details=details)
    return batch


async def _chunks(reader: BatchReader) -> AsyncGenerator[list[Any], None]:
    """The reader's records in lists of CHUNK_RECORDS, read and decoded in a thread.

    The next chunk is decoded while the caller applies the current one. An empty list ends
    the stream; by then the batch has verified (or BatchRejected was raised).
    """
    # BatchReader.records is a generator function: close() releases its file and thread.
    records = cast("Generator[Any, None, None]", reader.records())

    def take() -> list[Any]:
        return list(islice(records, CHUNK_RECORDS))

    upcoming = asyncio.ensure_future(asyncio.to_thread(take))
    try:
        while chunk := await upcoming:
            upcoming = asyncio.ensure_future(asyncio.to_thread(take))
            yield chunk
    finally:
        # The thread may still be reading: the generator is closed only once it is done.
        # Its own error, if any, yields to the one that ended the stream.
        with contextlib.suppress(Exception):
            await asyncio.shield(upcoming)
        records.close()

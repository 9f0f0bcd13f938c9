"""What follows a committed import or a published export: queue the new jobs, audit."""

from __future__ import annotations

from dataclasses import dataclass

from arq import ArqRedis

from airlink.export import ExportReport
from airlink.inbox import ImportReport
from response_processor.domain import audit
from response_processor.link.inbound import ProcessorInbound
from response_processor.processing.queue import enqueue_requests
from servicekit.database import Pool


@dataclass(frozen=True, slots=True)
class LinkHooks:
    """The processor's `after_import` and `after_export` for its `airlink.Link`."""

    pool: Pool
    arq: ArqRedis
    inbound: ProcessorInbound

    async def after_import(self, report: ImportReport) -> None:
        """Queue a job for each request the pass stored; audit every batch it took or refused."""
        applied = [batch.name.batch_id for batch in report.of_outcome("applied")]
        new_requests = self.inbound.take_new_requests(applied)
        if new_requests:
            await enqueue_requests(self.arq, new_requests)
        async with self.pool.acquire() as conn, conn.transaction():
            for batch in report.batches:
                quarantined = batch.outcome == "quarantined"
                await audit.record(
                    conn,
                    audit.SYSTEM,
                    audit.Action.BATCH_QUARANTINED if quarantined else audit.Action.BATCH_IMPORTED,
                    target=batch.name.file_name,
                    outcome=batch.outcome,
                    details={"records": batch.records, "reason": batch.reason},
                )

    async def after_export(self, report: ExportReport) -> None:
        """Audit each batch published, new or resent (heartbeats are too many to audit)."""
        batches = [batch for batch in report.batches if batch.kind != "heartbeat"]
        if not batches:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            for batch in batches:
                await audit.record(
                    conn,
                    audit.SYSTEM,
                    audit.Action.BATCH_EXPORTED,
                    target=str(batch.batch_id),
                    details={"seq": batch.seq, "kind": batch.kind, "records": batch.record_count},
                )

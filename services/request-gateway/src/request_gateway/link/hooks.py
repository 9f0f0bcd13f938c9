"""Around the link's passes: stage queued requests before an export, audit after an import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from airlink.inbox import ImportReport
from request_gateway.domain import requests
from request_gateway.domain.audit import Action
from request_gateway.link.inbound import GatewayInbound
from servicekit import audit
from servicekit.database import Pool

# Requests moved into the outbox per transaction; a backlog drains over several.
STAGE_CHUNK: Final = 10_000


@dataclass(frozen=True, slots=True)
class LinkHooks:
    """The gateway's `before_export` and `after_import` for its `airlink.Link`."""

    pool: Pool
    inbound: GatewayInbound
    max_staged: int

    async def before_export(self) -> None:
        """Move queued requests of active users into the outbox (up to `max_staged`)."""
        staged = 0
        while staged < self.max_staged:
            async with self.pool.acquire() as conn, conn.transaction():
                count = await requests.stage_for_export(conn, min(STAGE_CHUNK, self.max_staged))
            staged += count
            if count < STAGE_CHUNK:
                return

    async def after_import(self, report: ImportReport) -> None:
        """Audit every batch taken or refused, and every user it locked out."""
        applied = [batch.name.batch_id for batch in report.of_outcome("applied")]
        syncs = self.inbound.take_reports(applied)
        async with self.pool.acquire() as conn, conn.transaction():
            for batch in report.batches:
                quarantined = batch.outcome == "quarantined"
                await audit.record(
                    conn,
                    audit.SYSTEM,
                    Action.BATCH_QUARANTINED if quarantined else Action.BATCH_IMPORTED,
                    target=batch.name.file_name,
                    outcome=batch.outcome,
                    details={"records": batch.records, "reason": batch.reason},
                )
            for sync_report in syncs:
                if sync_report.locked_out:
                    await audit.record(
                        conn,
                        audit.SYSTEM,
                        Action.USERS_LOCKED_OUT,
                        details={"users": [str(user) for user in sync_report.locked_out]},
                    )

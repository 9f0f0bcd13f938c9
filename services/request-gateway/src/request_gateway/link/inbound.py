"""Applying the processor's batches: responses settle requests, sync records update users."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog
from prometheus_client import Counter

from airlink.records import GatewayBusiness, ProfileType, Response, User, UserSnapshot
from batchformat import Header
from request_gateway.domain import requests, sync
from servicekit.database import Connection

RESPONSES = Counter(
    "gateway_responses_imported",
    "Responses imported, by whether they settled a request or were ignored (unknown, "
    "already final, or older than the stored outcome).",
    ["outcome"],
)

log = structlog.get_logger("request_gateway.link")


class GatewayInbound:
    """The gateway's `airlink.InboundHandler`: runs inside each import's transaction.

    It remembers who was locked out by each batch, for the after-import audit.
    """

    def __init__(self) -> None:
        self.reports: dict[uuid.UUID, sync.SyncReport] = {}

    async def apply(
        self, conn: Connection, records: Sequence[GatewayBusiness], header: Header
    ) -> None:
        """Apply a chunk in record order: sync records first, so a response never waits."""
        report = self.reports.setdefault(header.batch_id, sync.SyncReport())
        profile_types = [record for record in records if isinstance(record, ProfileType)]
        users = [record for record in records if isinstance(record, User)]
        snapshots = [record for record in records if isinstance(record, UserSnapshot)]
        responses = [record for record in records if isinstance(record, Response)]
        if profile_types:
            report.profile_types += len(await sync.apply_profile_types(conn, profile_types))
        if users:
            await sync.apply_users(conn, users, report)
        for snapshot in snapshots:
            await sync.apply_snapshot(conn, snapshot, report)
        if responses:
            settled = await requests.apply_responses(conn, responses)
            RESPONSES.labels("settled").inc(settled)
            if ignored := len(responses) - settled:
                RESPONSES.labels("ignored").inc(ignored)
                log.info("responses_ignored", batch_id=str(header.batch_id), count=ignored)

    async def on_acknowledged(self, conn: Connection, batch_ids: Sequence[uuid.UUID]) -> None:
        """The processor holds these batches' requests now: they are delivered."""
        await requests.mark_delivered(conn, batch_ids)

    def take_reports(self, batch_ids: Sequence[uuid.UUID]) -> list[sync.SyncReport]:
        """What these (committed) batches changed; forgets every batch's report."""
        taken = [self.reports[batch_id] for batch_id in batch_ids if batch_id in self.reports]
        self.reports.clear()
        return taken

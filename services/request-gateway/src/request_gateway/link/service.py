"""The gateway's side of the link: stage queued requests, apply what the processor sends."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from airlink import LinkService
from airlink.records import GatewayBusiness, ProfileType, Request, Response, User, UserSnapshot
from batchformat import Header
from request_gateway.domain import requests, sync
from request_gateway.domain.audit import Action
from request_gateway.metrics import RESPONSES
from servicekit import audit
from servicekit.database import Connection

log = structlog.get_logger("request_gateway.link")


class GatewayLink(LinkService[GatewayBusiness, Request, None]):
    """Requests go out; responses and user sync records come in; acks mean delivered."""

    inbound_records = GatewayBusiness
    sent_records = Request

    async def stage(self, conn: Connection, limit: int) -> int:
        """Move queued requests of active users into the outbox."""
        return await requests.stage_for_export(conn, limit)

    async def apply(
        self, conn: Connection, records: Sequence[GatewayBusiness], header: Header
    ) -> None:
        """Apply a chunk in record order: sync records first, so a response never waits."""
        report = sync.SyncReport()
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
        if report.locked_out:  # in the import's transaction, like the lock-out itself
            details = {"users": [str(user) for user in report.locked_out]}
            await audit.record(conn, audit.SYSTEM, Action.USERS_LOCKED_OUT, details=details)
        if responses:
            settled = await requests.apply_responses(conn, responses)
            RESPONSES.labels("settled").inc(settled)
            if ignored := len(responses) - settled:
                RESPONSES.labels("ignored").inc(ignored)
                log.info("responses_ignored", batch_id=str(header.batch_id), count=ignored)

    async def acknowledged(self, conn: Connection, sent: Sequence[Request]) -> None:
        """The processor holds these requests now: they are delivered."""
        await requests.mark_delivered(conn, [request.id for request in sent])

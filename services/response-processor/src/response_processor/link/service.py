"""The processor's side of the link: a batch's requests and cancels are applied by
`requests.inbound`, and each request stored gets its job once the import committed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Never

from arq import ArqRedis

from airlink import ImportReport, LinkService
from airlink.records import ProcessorBusiness
from batchformat import Header
from response_processor.requests.inbound import apply_inbound
from response_processor.requests.queue import enqueue_requests
from servicekit.database import Connection

NewRequests = list[uuid.UUID]
"""What applying a chunk did that must follow the commit: the requests it stored."""


class ProcessorLink(LinkService[ProcessorBusiness, Never, NewRequests]):
    """Requests and cancels come in; responses go out (their acks need nothing more)."""

    inbound_records = ProcessorBusiness

    def __init__(self, arq: ArqRedis) -> None:
        self.arq = arq

    async def apply(
        self, conn: Connection, records: Sequence[ProcessorBusiness], header: Header
    ) -> NewRequests:
        """Store new requests (once) and apply cancels; nothing here runs a handler."""
        return await apply_inbound(conn, records, header.batch_id)

    async def committed(self, report: ImportReport[NewRequests]) -> None:
        """Queue a job for each request the pass stored (reconciliation redoes it if this fails)."""
        new_requests = [request for stored in report.effects() for request in stored]
        if new_requests:
            await enqueue_requests(self.arq, new_requests)

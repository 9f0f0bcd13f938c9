"""`LinkService`: the one contract between the link and the service it serves.

A service subclasses it once, typed by what it receives, what it hears acknowledged and
what applying leaves to do after the commit. The link audits its batches itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

from airlink.inbox import ImportReport
from batchformat import Header
from servicekit.database import Connection

In = TypeVar("In")
Sent = TypeVar("Sent")
Effect = TypeVar("Effect")


class LinkService(Generic[In, Sent, Effect]):
    """The service's side of a `Link`: what it receives, what it did, what follows a commit.

    `inbound_records` is the union of record structs `apply` takes (the link adds `Ack`);
    `sent_records` the struct (or union) `acknowledged` takes, None if it takes nothing.
    """

    inbound_records: ClassVar[object]
    sent_records: ClassVar[object | None] = None

    async def stage(self, conn: Connection, limit: int) -> int:
        """Move up to `limit` records into the outbox in bulk, in its own transaction at the
        start of an export pass; return how many (the gateway stages its queued requests)."""
        return 0

    async def apply(self, conn: Connection, records: Sequence[In], header: Header) -> Effect:
        """Apply a chunk of a peer batch (acks excluded) in the import's transaction, which
        rolls back if the batch does not verify; return what must follow the commit."""
        raise NotImplementedError

    async def acknowledged(self, conn: Connection, sent: Sequence[Sent]) -> None:
        """React, in the import's transaction, to the peer acknowledging batches of ours that
        carried these records (of the `sent_records` kinds)."""

    async def committed(self, report: ImportReport[Effect]) -> None:
        """Act on an import pass that imported something, once it committed. A failure is
        logged: the batches stay applied and audited (the processor's reconciliation
        queues the jobs that Redis did not take)."""

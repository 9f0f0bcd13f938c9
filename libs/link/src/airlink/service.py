"""`LinkService`: the one contract between the link and the service it serves.

The link calls a service at four points, each typed:

- `stage(conn, limit)` at the start of an export pass, in its own transaction: move up to
  `limit` records into the outbox in bulk; return how many (the gateway stages its queued
  requests; the default stages nothing);
- `apply(conn, records, header)` for each chunk of a peer batch, inside the import's
  transaction (acks excluded; provisional until the batch verifies): returns an `Effect`
  the link keeps with the batch, so that nothing is stashed between calls;
- `acknowledged(conn, sent)` inside the same transaction, with the records of the kinds
  in `sent_records` that our batches the peer just acknowledged carried;
- `committed(report)` once the import pass committed, with each batch's effects: for what
  must wait for the commit (queueing jobs). It may fail without losing anything the
  database needs: the link logs it, and the batch stays applied and audited.

The link itself writes the audit rows of its batches (`airlink.schema.AuditAction`).
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
        """Move up to `limit` records into the outbox; return how many (0: nothing to do)."""
        return 0

    async def apply(self, conn: Connection, records: Sequence[In], header: Header) -> Effect:
        """Apply a chunk of a peer batch in the import's transaction; what it did."""
        raise NotImplementedError

    async def acknowledged(self, conn: Connection, sent: Sequence[Sent]) -> None:
        """React to the peer acknowledging batches that carried these records of ours."""

    async def committed(self, report: ImportReport[Effect]) -> None:
        """Act on an import pass once it committed (only passes that imported something)."""

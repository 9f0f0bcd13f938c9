"""Retention of the link's state: old archived batch files and old link rows are purged.

`purge(pool, settings, older_than)` deletes, towards the settings' peer:

- **archived batch files** in `inbox/archive/` last modified before `older_than` (only
  names of the batch pattern; quarantined batches are an operator's to clear);
- **outbound batches** acknowledged, and created and acknowledged, before `older_than`, with
  the outbox groups and items no remaining batch refers to. Only an unacknowledged batch is
  ever resent or rendered again, so nothing needs these rows once the peer has them;
- **inbound batch records** last received before `older_than` and at or below the peer's
  contiguous sequence (gap tracking reads only the records above it).

Duplicate detection forgets a purged inbound batch. That is safe because a peer resends a
batch only while it is unacknowledged, every `resend_after_s` (5 minutes by default): one
still arriving after the retention (30 days by default) would mean our acknowledgements had
not reached the peer for that long, which the stale-link and unacknowledged-batch alerts
report within minutes. Replaying an archived file by hand after its record was purged would
apply it again; the archive keeps files no longer than the records, so `replay from
archive` (docs/operations.md) only ever finds files whose records still exist.

Database purges run in short transactions (`servicekit.retention`); each chunk of outbound
batches locks the outbox groups it may delete before checking them, so an exporter slicing
a group into a new batch at the same moment either finishes first (and the group stays) or
waits for the chunk.
"""

# ruff: noqa: S608 - the SQL interpolates only the constant names of airlink.schema
from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Final

import structlog

from airlink.schema import INBOUND_BATCH, OUTBOUND_BATCH, OUTBOX_GROUP, OUTBOX_ITEM, PEER
from airlink.settings import LinkSettings
from batchformat import BatchName
from servicekit.database import Connection, Pool
from servicekit.retention import CHUNK_ROWS, count_purged, purge_in_chunks

log = structlog.get_logger("airlink.retention")

_OLDEST_OUTBOUND: Final = f"""
    SELECT batch_id, record_count FROM {OUTBOUND_BATCH}
    WHERE peer = $1 AND acknowledged_at < $2 AND created_at < $2
    ORDER BY seq LIMIT $3
"""
_DELETE_OUTBOUND: Final = f"""
    DELETE FROM {OUTBOUND_BATCH}
    WHERE batch_id = ANY($1::uuid[]) AND acknowledged_at < $2 AND created_at < $2
    RETURNING slice_groups
"""
_LOCK_GROUPS: Final = f"""
    SELECT group_id FROM {OUTBOX_GROUP} WHERE group_id = ANY($1::bigint[])
    ORDER BY group_id FOR UPDATE
"""
# A batch's slice groups are in ascending order (the exporter takes pending groups in group
# order), so its first and last say whether it can hold any group in [$2, $3]: only the few
# batches that can are unnested.
_DELETE_GROUPS: Final = f"""
    WITH still_referenced AS (
        SELECT s.group_id FROM {OUTBOUND_BATCH} AS o, unnest(o.slice_groups) AS s (group_id)
        WHERE o.slice_groups[1] <= $3 AND o.slice_groups[cardinality(o.slice_groups)] >= $2
    )
    DELETE FROM {OUTBOX_GROUP} AS g
    WHERE g.group_id = ANY($1::bigint[]) AND g.batched_count = g.item_count
      AND NOT EXISTS (SELECT 1 FROM still_referenced AS r WHERE r.group_id = g.group_id)
    RETURNING g.group_id
"""
_DELETE_ITEMS: Final = f"DELETE FROM {OUTBOX_ITEM} WHERE group_id = ANY($1::bigint[])"
_DELETE_INBOUND: Final = f"""
    DELETE FROM {INBOUND_BATCH} WHERE (source, batch_id) IN (
        SELECT b.source, b.batch_id FROM {INBOUND_BATCH} AS b, {PEER} AS p
        WHERE b.source = $1 AND p.peer = $1 AND b.seq <= p.inbound_contiguous_seq
          AND b.last_received_at < $2
        LIMIT $3
    )
"""


@dataclasses.dataclass(slots=True)
class LinkPurge:
    """What one purge deleted."""

    archived_batch_files: int = 0
    outbound_batches: int = 0
    outbox_groups: int = 0
    outbox_items: int = 0
    inbound_batches: int = 0

    def counts(self) -> dict[str, int]:
        """Deletions by what (the `what` label of `retention_purged_total`)."""
        return dataclasses.asdict(self)


async def purge(
    pool: Pool, settings: LinkSettings, older_than: datetime, *, chunk: int = CHUNK_ROWS
) -> LinkPurge:
    """Delete the link's archived files and rows older than `older_than`; count and log it."""
    purged = LinkPurge()
    purged.archived_batch_files = await asyncio.to_thread(
        purge_archive, settings.archive_dir, older_than
    )
    peer = settings.peer_network_id
    while await _purge_outbound_chunk(pool, peer, older_than, chunk, purged):
        pass

    async def inbound_chunk(conn: Connection, limit: int) -> int:
        return _deleted(await conn.execute(_DELETE_INBOUND, peer, older_than, limit))

    purged.inbound_batches = await purge_in_chunks(pool, inbound_chunk, limit=chunk)
    for what, count in purged.counts().items():
        count_purged(what, count)
    if any(purged.counts().values()):
        log.info("link_purged", peer=peer, older_than=older_than.isoformat(), **purged.counts())
    return purged


def purge_archive(archive_dir: Path, older_than: datetime) -> int:
    """Delete archived batch files last modified before `older_than`; return how many."""
    limit = older_than.timestamp()
    deleted = 0
    try:
        entries = list(os.scandir(archive_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if BatchName.parse(entry.name) is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < limit:
                os.unlink(entry.path)
                deleted += 1
        except FileNotFoundError:
            continue  # another worker's purge took it
    return deleted


async def _purge_outbound_chunk(
    pool: Pool, peer: str, older_than: datetime, records: int, purged: LinkPurge
) -> bool:
    """Delete the oldest purgeable batches (about `records` records) and what only they
    refer to, in one transaction; False when there was nothing left to delete."""
    async with pool.acquire() as conn, conn.transaction():
        oldest = await conn.fetch(_OLDEST_OUTBOUND, peer, older_than, records)
        batch_ids: list[uuid.UUID] = []
        total = 0
        for row in oldest:
            if batch_ids and total + row["record_count"] > records:
                break
            batch_ids.append(row["batch_id"])
            total += row["record_count"]
        if not batch_ids:
            return False
        deleted = await conn.fetch(_DELETE_OUTBOUND, batch_ids, older_than)
        groups = sorted({group for row in deleted for group in row["slice_groups"]})
        gone: list[int] = []
        if groups:
            await conn.execute(_LOCK_GROUPS, groups)
            rows = await conn.fetch(_DELETE_GROUPS, groups, groups[0], groups[-1])
            gone = [row["group_id"] for row in rows]
        if gone:
            purged.outbox_items += _deleted(await conn.execute(_DELETE_ITEMS, gone))
    purged.outbound_batches += len(deleted)
    purged.outbox_groups += len(gone)
    return True


def _deleted(status: str) -> int:
    """The row count of a `DELETE n` command status."""
    return int(status.rsplit(" ", 1)[-1])

"""The link's storage layout, named once: its tables, and the SQL that joins them.

Tables (created by `airlink.migrations`, one set per service database):

- `link_peer`: one row per peer: the next outbound seq, when the last batch was made, the
  highest and contiguous inbound seqs, when the peer was last heard from;
- `link_outbox_group`: one row per `enqueue` call (or ack): how many items it holds and how
  many of them are in a batch already;
- `link_outbox_item`: the records, as the exact JSON a batch carries, keyed by (group, position);
- `link_outbound_batch`: each batch made: its header, slices of groups, publication, ack;
- `link_inbound_batch`: each peer batch applied, keyed by (source, batch id).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

PEER: Final = "link_peer"
OUTBOX_GROUP: Final = "link_outbox_group"
OUTBOX_ITEM: Final = "link_outbox_item"
OUTBOUND_BATCH: Final = "link_outbound_batch"
INBOUND_BATCH: Final = "link_inbound_batch"

ITEM_COLUMNS: Final = ("group_id", "position", "kind", "record")

SLICE_ITEMS: Final = f"""
    FROM {OUTBOUND_BATCH} AS batch,
         unnest(batch.slice_groups, batch.slice_starts, batch.slice_stops)
             AS slice (group_id, start, stop),
         {OUTBOX_ITEM} AS item
    WHERE item.group_id = slice.group_id
      AND item.position >= slice.start AND item.position < slice.stop
"""
"""FROM and WHERE of the items outbound batches carry (`batch` and `item`), for `AND ...`."""


class AuditAction(StrEnum):
    """What the link writes into the service's audit log, in the import or export transaction."""

    BATCH_IMPORTED = "batch_imported"
    BATCH_QUARANTINED = "batch_quarantined"
    BATCH_EXPORTED = "batch_exported"

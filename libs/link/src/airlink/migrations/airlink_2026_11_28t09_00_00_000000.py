"""Create the link's tables: peers, outbox groups and items, outbound and inbound batches."""

from servicekit.migrations import sql_migration

ID = "2026-11-28T09:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "create the link tables"

NETWORK_ID = r"'^[a-z0-9][a-z0-9-]{0,62}$'"
MAX_SEQ = 999_999_999_999

# One statement per string: asyncpg runs each as one prepared statement.
STATEMENTS = [
    # One row per peer. Exporters lock it to take turns; it holds the next sequence number
    # to send and what the importers have seen of the peer's sequence.
    f"""
    CREATE TABLE link_peer (
        peer text PRIMARY KEY CHECK (peer ~ {NETWORK_ID}),
        next_seq bigint NOT NULL DEFAULT 1 CHECK (next_seq BETWEEN 1 AND {MAX_SEQ + 1}),
        last_batch_at timestamptz,
        last_inbound_at timestamptz,
        inbound_max_seq bigint NOT NULL DEFAULT 0 CHECK (inbound_max_seq >= 0),
        inbound_contiguous_seq bigint NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (inbound_contiguous_seq BETWEEN 0 AND inbound_max_seq)
    )
    """,
    # Everything `enqueue` writes in one call is one group: its items are positions 0..n-1,
    # and the group row says how many of them are already in batches. Batching updates one
    # row per group, never one per item, which is what keeps 100,000 items cheap to batch.
    """
    CREATE TABLE link_outbox_group (
        group_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        item_count integer NOT NULL CHECK (item_count > 0),
        batched_count integer NOT NULL DEFAULT 0,
        business boolean NOT NULL,
        acks_business_batch boolean,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (batched_count BETWEEN 0 AND item_count),
        CHECK (business = (acks_business_batch IS NULL))
    )
    """,
    # The exporter's selection (groups with items in no batch yet, in group order) and its
    # when-to-send checks; small, since groups leave it once wholly batched.
    """
    CREATE INDEX link_outbox_group_pending
        ON link_outbox_group (group_id) WHERE batched_count < item_count
    """,
    # Records are kept as the exact JSON text the batch carries (`json`, not `jsonb`, which
    # would reformat it): rendering writes it out as stored. No foreign key to the group and
    # no CHECK on the kind: per-row checks would double the cost of a 100,000-record COPY, and
    # only `airlink.outbox` writes here, after checking each record against its struct.
    """
    CREATE TABLE link_outbox_item (
        group_id bigint NOT NULL,
        position integer NOT NULL,
        kind text NOT NULL,
        record json NOT NULL,
        PRIMARY KEY (group_id, position)
    )
    """,
    # A batch holds slices of groups: items [start, stop) of group slice_groups[i], in order.
    f"""
    CREATE TABLE link_outbound_batch (
        batch_id uuid PRIMARY KEY,
        peer text NOT NULL REFERENCES link_peer (peer),
        source text NOT NULL CHECK (source ~ {NETWORK_ID}),
        seq bigint NOT NULL CHECK (seq BETWEEN 0 AND {MAX_SEQ}),
        created_at timestamptz NOT NULL,
        reason text NOT NULL CHECK (reason IN ('new', 'heartbeat')),
        slice_groups bigint[] NOT NULL,
        slice_starts integer[] NOT NULL,
        slice_stops integer[] NOT NULL,
        record_count integer NOT NULL CHECK (record_count >= 0),
        business_count integer NOT NULL,
        sha256 text CHECK (sha256 ~ '^[0-9a-f]{{64}}$'),
        size_bytes bigint CHECK (size_bytes > 0),
        published_at timestamptz,
        last_published_at timestamptz,
        publish_count integer NOT NULL DEFAULT 0 CHECK (publish_count >= 0),
        acknowledged_at timestamptz,
        UNIQUE (peer, seq),
        CHECK (cardinality(slice_groups) = cardinality(slice_starts)),
        CHECK (cardinality(slice_groups) = cardinality(slice_stops)),
        CHECK (business_count BETWEEN 0 AND record_count),
        CHECK ((published_at IS NULL) = (last_published_at IS NULL)),
        CHECK (acknowledged_at IS NULL OR published_at IS NOT NULL)
    )
    """,
    # Crash recovery: batches created but never published.
    """
    CREATE INDEX link_outbound_batch_unpublished
        ON link_outbound_batch (peer, seq) WHERE published_at IS NULL
    """,
    # Resends, and the unacknowledged count and age of link health.
    """
    CREATE INDEX link_outbound_batch_unacknowledged
        ON link_outbound_batch (peer, last_published_at)
        WHERE acknowledged_at IS NULL AND published_at IS NOT NULL
    """,
    f"""
    CREATE TABLE link_inbound_batch (
        source text NOT NULL REFERENCES link_peer (peer),
        batch_id uuid NOT NULL,
        seq bigint NOT NULL CHECK (seq BETWEEN 0 AND {MAX_SEQ}),
        created_at timestamptz NOT NULL,
        record_count integer NOT NULL CHECK (record_count >= 0),
        business_count integer NOT NULL,
        first_received_at timestamptz NOT NULL,
        last_received_at timestamptz NOT NULL,
        times_received integer NOT NULL DEFAULT 1 CHECK (times_received >= 1),
        PRIMARY KEY (source, batch_id),
        CHECK (business_count BETWEEN 0 AND record_count)
    )
    """,
    # Gap tracking: the seqs above the contiguous prefix. Not unique: a peer whose database
    # was restored may reuse a seq under a new batch id, and that batch must still apply.
    """
    CREATE INDEX link_inbound_batch_seq ON link_inbound_batch (source, seq)
    """,
]

# Drops the link's state with its tables: reversing this migration forgets the link entirely.
BACKWARDS = [
    "DROP TABLE link_inbound_batch",
    "DROP TABLE link_outbound_batch",
    "DROP TABLE link_outbox_item",
    "DROP TABLE link_outbox_group",
    "DROP TABLE link_peer",
]


forwards = sql_migration("airlink", ID, DESCRIPTION, STATEMENTS, BACKWARDS)

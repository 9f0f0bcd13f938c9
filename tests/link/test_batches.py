"""The operators' batch listings: newest first per peer (peers descending), every batch once
across pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from airlink.batches import list_inbound
from servicekit.testing import MakeDatabase
from tests.link.conftest import link_database

T0 = datetime(2026, 12, 1, tzinfo=UTC)


async def test_inbound_pages_cross_from_one_peer_to_the_next_without_skipping(
    postgres_database: MakeDatabase,
) -> None:
    conn = await asyncpg.connect(link_database(postgres_database))
    try:
        await conn.execute("INSERT INTO link_peer (peer) VALUES ('alpha'), ('beta')")
        # beta's seqs are above alpha's: paging by "seq below the last" alone skipped them.
        stored = [("alpha", seq) for seq in (1, 2)] + [("beta", seq) for seq in (7, 8, 9)]
        await conn.executemany(
            """INSERT INTO link_inbound_batch (source, batch_id, seq, created_at, record_count,
                   business_count, first_received_at, last_received_at)
               VALUES ($1, $2, $3, $4, 0, 0, $4, $4)""",
            [(source, uuid.uuid4(), seq, T0) for source, seq in stored],
        )
        seen: list[tuple[str, int]] = []
        cursor = None
        while True:
            page = await list_inbound(conn, cursor=cursor, limit=2)
            seen += [(batch.source, batch.seq) for batch in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == [("beta", 9), ("beta", 8), ("beta", 7), ("alpha", 2), ("alpha", 1)]
    finally:
        await conn.close()

"""The link's hot queries use an index on 100,000 inbound and 100,000 outbound batch rows:
duplicate detection, gap tracking, acknowledgements, retention and the operators' listings
(the SQL the link runs, planned by PostgreSQL as it would at that size)."""

# ruff: noqa: S608 - the fill interpolates only the ROWS constant
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from airlink import batches, inbox, retention
from servicekit.testing import MakeDatabase, explain
from tests.link.conftest import migrated

ROWS = 100_000
FILL = [
    "INSERT INTO link_peer (peer) VALUES ('request-net'), ('response-net')",
    f"""INSERT INTO link_inbound_batch (source, batch_id, seq, created_at, record_count,
            business_count, first_received_at, last_received_at)
        SELECT 'request-net', gen_random_uuid(), n, now(), 10, 10, now(), now()
        FROM generate_series(1, {ROWS}) n""",
    f"""INSERT INTO link_outbound_batch (batch_id, peer, source, seq, created_at, reason,
            slice_groups, slice_starts, slice_stops, record_count, business_count,
            published_at, last_published_at, acknowledged_at)
        SELECT gen_random_uuid(), 'request-net', 'response-net', n,
               now() - make_interval(mins => ({ROWS} - n)), 'new', '{{1}}', '{{0}}', '{{10}}',
               10, 10, now(), now(),
               CASE WHEN n < {ROWS} - 50 THEN now() - make_interval(mins => ({ROWS} - n)) END
        FROM generate_series(1, {ROWS}) n""",
    "ANALYZE",
]
NOW = datetime.now(UTC)
MONTH_AGO = NOW - timedelta(days=30)
QUERIES: list[Any] = [
    ("seen", inbox._SEEN, ("request-net", uuid.uuid4())),
    ("seen again", inbox._SEEN_AGAIN, ("request-net", uuid.uuid4(), NOW)),
    ("advance contiguous", inbox._ADVANCE_CONTIGUOUS, ("request-net", ROWS - 10)),
    ("acknowledge", inbox._ACKNOWLEDGE, ("request-net", [uuid.uuid4()], [5], NOW)),
    ("oldest outbound", retention._OLDEST_OUTBOUND, ("request-net", MONTH_AGO, 1000)),
    # Both directions descending (not ORDER BY peer, seq DESC): one backward index scan on
    # (peer, seq), where mixed directions sorted the whole table for every page.
    ("list outbound", batches.OUTBOUND_SQL, (None, None, 50)),
    ("list inbound", batches.INBOUND_SQL, (None, None, 50)),
]  # fmt: skip


def _id(query: Any) -> str:
    return str(query.values[0] if hasattr(query, "values") else query[0])


async def _migrated_and_filled(url: str) -> None:
    await migrated(url)
    connection = await asyncpg.connect(url)
    try:
        for statement in FILL:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def filled(postgres_database: MakeDatabase) -> str:
    """A clone of one template filled once for the whole module."""
    return postgres_database(_migrated_and_filled, key="airlink-explain")


@pytest.mark.parametrize(("name", "query", "args"), QUERIES, ids=[_id(q) for q in QUERIES])
async def test_each_hot_query_reads_the_batch_tables_by_an_index(
    filled: str, name: str, query: str, args: tuple[Any, ...]
) -> None:
    connection = await asyncpg.connect(filled)
    try:
        plan = await explain(connection, query, *args)
    finally:
        await connection.close()
    assert "Seq Scan on link_inbound_batch" not in plan, f"{name}:\n{plan}"
    assert "Seq Scan on link_outbound_batch" not in plan, f"{name}:\n{plan}"
    assert "Index" in plan, f"{name}:\n{plan}"

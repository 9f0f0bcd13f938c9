"""The airlink Piccolo app: its migrations build the link tables, once, on a fresh database."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase
from tests.link.conftest import APPS, link_database

TABLES = {
    "link_peer",
    "link_outbox_group",
    "link_outbox_item",
    "link_outbound_batch",
    "link_inbound_batch",
}


async def test_migrate_creates_the_link_tables_and_is_idempotent(
    postgres_database: MakeDatabase,
) -> None:
    url = postgres_database()
    first = await migrate(url, APPS)
    assert "2026-11-28T09:00:00:000000" in first
    again = await migrate(url, APPS)
    assert "No migrations need to be run" in again
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'link_%'")
        assert {row[0] for row in rows} == TABLES
        indexes = {row[0] for row in await conn.fetch("SELECT indexname FROM pg_indexes")}
        assert {
            "link_outbox_group_pending",
            "link_outbound_batch_unpublished",
            "link_outbound_batch_unacknowledged",
            "link_inbound_batch_seq",
        } <= indexes
    finally:
        await conn.close()


async def test_migrate_again_leaves_existing_rows_alone(postgres_database: MakeDatabase) -> None:
    url = link_database(postgres_database)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO link_peer (peer) VALUES ('response-net')")
        assert "No migrations need to be run" in await migrate(url, APPS)
        assert await conn.fetchval("SELECT next_seq FROM link_peer") == 1
    finally:
        await conn.close()


async def test_constraints_refuse_rows_the_protocol_cannot_produce(
    postgres_database: MakeDatabase,
) -> None:
    conn = await asyncpg.connect(link_database(postgres_database))
    group = "INSERT INTO link_outbox_group (item_count, business, acks_business_batch) "
    try:
        with pytest.raises(asyncpg.CheckViolationError):  # an ack says what it acknowledges
            await conn.execute(group + "VALUES (1, false, NULL)")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(group + "VALUES (0, true, NULL)")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO link_peer (peer) VALUES ('Not A Network')")
        await conn.execute("INSERT INTO link_peer (peer) VALUES ('response-net')")
        with pytest.raises(asyncpg.CheckViolationError):  # one start and stop per group
            await conn.execute(
                "INSERT INTO link_outbound_batch (batch_id, peer, source, seq, created_at, "
                "reason, slice_groups, slice_starts, slice_stops, record_count, business_count) "
                "VALUES ($1, 'response-net', 'request-net', 1, now(), 'new', "
                "'{1,2}', '{0}', '{1}', 1, 1)",
                uuid.uuid4(),
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO link_inbound_batch (source, batch_id, seq, created_at, "
                "record_count, business_count, first_received_at, last_received_at) "
                "VALUES ('elsewhere', $1, 1, now(), 0, 0, now(), now())",
                uuid.uuid4(),
            )
    finally:
        await conn.close()

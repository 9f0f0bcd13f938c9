"""The audit writer: one row per call, in the caller's transaction, details as JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any, TypeAlias

import asyncpg
import pytest

from servicekit.audit import SYSTEM, Actor, record
from servicekit.testing import MakeDatabase

Conn: TypeAlias = "asyncpg.Connection[Any]"
ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")

# The columns every service's own `audit_log` migration declares.
AUDIT_LOG_DDL = """
    CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor_id uuid NULL,
        actor varchar(64) NULL,
        action varchar(64) NOT NULL,
        target varchar(200) NULL,
        outcome varchar(16) NOT NULL DEFAULT 'ok',
        client_address varchar(64) NULL,
        details jsonb NOT NULL DEFAULT '{}'
    )
"""


class Action(StrEnum):
    USER_CREATED = "user_created"
    LOGIN_FAILED = "login_failed"


async def _audit_table(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(AUDIT_LOG_DDL)
    finally:
        await connection.close()


@pytest.fixture
async def conn(postgres_database: MakeDatabase) -> AsyncIterator[Conn]:
    connection = await asyncpg.connect(postgres_database(_audit_table, key="servicekit-audit"))
    try:
        yield connection
    finally:
        await connection.close()


async def _entries(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT actor_id, actor, action, target, outcome, client_address, details"
        " FROM audit_log ORDER BY id"
    )
    return [dict(row) | {"details": json.loads(row["details"])} for row in rows]


async def test_an_entry_records_who_did_what_to_what_from_where(conn: Conn) -> None:
    actor = Actor(ALICE, "alice", "192.0.2.1")
    await record(conn, actor, Action.USER_CREATED, target="user:bob", details={"roles": ["user"]})
    assert await _entries(conn) == [
        {
            "actor_id": ALICE,
            "actor": "alice",
            "action": "user_created",
            "target": "user:bob",
            "outcome": "ok",
            "client_address": "192.0.2.1",
            "details": {"roles": ["user"]},
        }
    ]


async def test_the_system_acts_without_an_id_or_address(conn: Conn) -> None:
    await record(conn, SYSTEM, "batch_imported")
    [entry] = await _entries(conn)
    assert (entry["actor_id"], entry["actor"], entry["client_address"]) == (None, "system", None)
    assert (entry["action"], entry["target"], entry["details"]) == ("batch_imported", None, {})


async def test_a_refusal_keeps_its_outcome_and_reason(conn: Conn) -> None:
    actor = Actor(None, "mallory", "198.51.100.7")
    await record(
        conn, actor, Action.LOGIN_FAILED, outcome="refused", details={"why": "bad_credentials"}
    )
    [entry] = await _entries(conn)
    assert entry["action"] == "login_failed"
    assert entry["outcome"] == "refused"
    assert entry["details"] == {"why": "bad_credentials"}


async def test_an_entry_rolls_back_with_the_change_it_describes(conn: Conn) -> None:
    transaction = conn.transaction()
    await transaction.start()
    await record(conn, SYSTEM, Action.USER_CREATED)
    await transaction.rollback()  # the change failed
    assert await _entries(conn) == []
    async with conn.transaction():
        await record(conn, SYSTEM, Action.USER_CREATED)
    assert len(await _entries(conn)) == 1


async def test_details_take_any_json_value(conn: Conn) -> None:
    details = {"count": 3, "ids": [1, 2], "nested": {"ok": True}, "note": 'quote " and \u00e9'}
    await record(conn, SYSTEM, "documents_loaded", details=details)
    [entry] = await _entries(conn)
    assert entry["details"] == details

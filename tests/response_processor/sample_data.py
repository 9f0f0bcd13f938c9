"""A processor database holding some of everything, written the way the service writes it:
seeded profile types, users made by the admin (audited, queued for sync), documents, requests
in several states, a dead letter."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from response_processor.domain import audit
from response_processor.domain.bootstrap import read_seed, seed_profile_types
from response_processor.domain.documents import DocumentIn, load_documents
from response_processor.domain.users import UserIn, create_user
from tests.response_processor.conftest import USER_PASSWORD


async def fill(connection: asyncpg.Connection[Any]) -> None:
    """Profile types, two users, documents, three requests (one dead-lettered)."""
    await seed_profile_types(connection, read_seed())
    users = [
        await create_user(
            connection, UserIn(name, USER_PASSWORD, ["user"], "standard"), audit.SYSTEM
        )
        for name in ("alice", "bob")
    ]
    await load_documents(
        connection,
        [DocumentIn("Weather", "rain tomorrow"), DocumentIn("Budget", "numbers ü and 'quotes'")],
    )
    ids = [uuid.uuid4() for _ in range(3)]
    await connection.execute(
        """INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at,
                                result, error_code, error_message, attempts)
           VALUES ($1, $4, 'echo', '{"n": 1}', 'completed', 't1', now(), '{"n": 1}', NULL,
                   NULL, 1),
                  ($2, $4, 'echo', '{"n": 2}', 'received', 't2', now(), NULL, NULL, NULL, 0),
                  ($3, $5, 'echo', '{"n": 3}', 'failed', 't3', now(), NULL, 'handler_error',
                   'boom', 5)""",
        *ids,
        users[0].id,
        users[1].id,
    )
    await connection.execute(
        """INSERT INTO dead_letter (request, error_code, error_message, attempts)
           VALUES ($1, 'handler_error', 'boom', 5)""",
        ids[2],
    )

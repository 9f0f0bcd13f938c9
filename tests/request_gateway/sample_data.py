"""A gateway database holding some of everything, written the way the service writes it: the
sync functions for users and profile types, the submit function for requests, API keys."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from request_gateway.domain import api_keys, requests, sync
from tests.request_gateway.conftest import profile_type, user_record


async def fill(connection: asyncpg.Connection[Any]) -> list[uuid.UUID]:
    """Two users, a profile type, an API key, requests in several states; the request ids."""
    alice, bob = await user_record("alice"), await user_record("bob", roles=("operator",))
    async with connection.transaction():
        await sync.apply_profile_types(connection, [profile_type()])
        await sync.apply_users(connection, [alice, bob], sync.SyncReport())
    await api_keys.create(
        connection, alice.id, api_keys.ApiKeyIn(name="laptop"), max_days=90, max_keys=10
    )
    ids = []
    for number, user in enumerate((alice, alice, bob)):
        submitted = await requests.submit(
            connection,
            user_id=user.id,
            request_type="echo",
            payload_json=f'{{"n": {number}}}',
            trace_id=f"trace-{number}",
            idempotency_key=f"key-{number}" if number else None,
            max_pending=10,
        )
        ids.append(submitted.request.id)
    await connection.execute(
        """UPDATE request SET status = 'completed', result = '{"n": 0}', finished_at = now()
           WHERE id = $1""",
        ids[0],
    )
    await connection.execute(
        "INSERT INTO audit_log (action, actor, details) VALUES ('login', 'alice', '{\"a\": 1}')"
    )
    return ids

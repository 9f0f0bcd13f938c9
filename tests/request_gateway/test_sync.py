"""Users and profile types arrive from the processor: versions, lock-outs, snapshots."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from airlink.records import User, UserSnapshot
from authkit.passwords import hash_password
from servicekit.testing import eventually
from tests.request_gateway.conftest import (
    Client,
    MakeMember,
    Sync,
    profile_type,
)


async def _status(client: Client, headers: dict[str, str]) -> int:
    return (await client.get("/api/v1/me", headers=headers)).status_code


async def test_an_older_version_never_overwrites_a_newer_one(
    client: Client, make_member: MakeMember, sync: Sync, db: Any
) -> None:
    member = await make_member()
    newer = msgspec.structs.replace(member.record, roles=["operator"], version=3)
    older = msgspec.structs.replace(member.record, roles=["admin"], version=2)
    await sync([newer])
    await sync([older])
    row = await db.fetchrow("SELECT roles, version FROM app_user WHERE id = $1", member.id)
    assert (list(row["roles"]), row["version"]) == (["operator"], 3)


async def test_deactivation_through_a_sync_batch_locks_the_user_out_at_once(
    client: Client, make_member: MakeMember, sync: Sync, db: Any
) -> None:
    member = await make_member()
    key = await client.post("/api/v1/api-keys", json={"name": "k"}, headers=member.headers)
    queued = await client.post(
        "/api/v1/requests", json={"type": "echo", "payload": {}}, headers=member.headers
    )
    assert queued.status_code == 202
    assert await _status(client, member.headers) == 200

    await sync([msgspec.structs.replace(member.record, active=False, version=2)])

    async def locked_out() -> bool:
        return await _status(client, member.headers) in (401, 403)

    await eventually(locked_out)
    assert await _status(client, {"X-API-Key": key.json()["key"]}) == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": member.tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    status = await db.fetchval("SELECT status FROM request WHERE id = $1", queued.json()["id"])
    assert status == "cancelled"  # never exported
    assert await db.fetchval("SELECT count(*) FROM api_key WHERE revoked_at IS NULL") == 0


async def test_a_password_change_on_the_processor_ends_sessions_here(
    client: Client, make_member: MakeMember, sync: Sync
) -> None:
    member = await make_member()
    changed = msgspec.structs.replace(
        member.record, password_hash=await hash_password("another password 1234"), version=2
    )
    await sync([changed])

    async def token_dead() -> bool:
        return await _status(client, member.headers) == 401

    await eventually(token_dead)


async def test_a_password_change_on_the_processor_revokes_the_refresh_tokens_here(
    client: Client, make_member: MakeMember, sync: Sync, db: Any
) -> None:
    member = await make_member()
    key = await client.post("/api/v1/api-keys", json={"name": "k"}, headers=member.headers)
    changed = msgspec.structs.replace(
        member.record, password_hash=await hash_password("another password 1234"), version=2
    )
    await sync([changed])
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": member.tokens["refresh_token"]}
    )
    assert (refresh.status_code, refresh.json()["error"]["code"]) == (401, "token_invalid")
    reasons = await db.fetch(
        "SELECT DISTINCT revoked_reason FROM auth_refresh_token WHERE user_id = $1", member.id
    )
    assert [row["revoked_reason"] for row in reasons] == ["password_changed"]
    # The user's own password change keeps their API keys (separate credentials).
    assert await _status(client, {"X-API-Key": key.json()["key"]}) == 200


async def test_a_record_asking_to_revoke_api_keys_revokes_them_even_if_superseded(
    client: Client, make_member: MakeMember, sync: Sync, db: Any
) -> None:
    member = await make_member()
    key = await client.post("/api/v1/api-keys", json={"name": "k"}, headers=member.headers)
    reset = msgspec.structs.replace(
        member.record,
        password_hash=await hash_password("an admin's reset 12345"),
        version=2,
        revoke_api_keys=True,
    )
    # A later change in the same batch wins the upsert; the revocation still happens.
    later = msgspec.structs.replace(reset, roles=["operator"], version=3, revoke_api_keys=False)
    await sync([reset, later])

    async def key_dead() -> bool:
        return await _status(client, {"X-API-Key": key.json()["key"]}) == 401

    await eventually(key_dead)
    reason = await db.fetchval("SELECT revoked_reason FROM api_key WHERE user_id = $1", member.id)
    assert reason == "revoked_by_admin"


def test_a_user_record_without_revoke_api_keys_still_decodes_and_is_not_written_by_default() -> (
    None
):
    record = User(
        id=uuid.uuid4(), username="old", password_hash="$argon2id$x", roles=["user"],
        profile_type="standard", active=True, must_change_password=False, version=1,
    )  # fmt: skip
    encoded = msgspec.json.encode(record)
    assert b"revoke_api_keys" not in encoded
    assert msgspec.json.decode(encoded, type=User).revoke_api_keys is False


async def test_a_profile_type_change_applies_to_the_next_request(
    client: Client, make_member: MakeMember, sync: Sync
) -> None:
    member = await make_member()
    await sync([profile_type(version=2, types=["documents.search"])])

    async def echo_refused() -> bool:
        response = await client.post(
            "/api/v1/requests", json={"type": "echo", "payload": {}}, headers=member.headers
        )
        return response.status_code == 403

    await eventually(echo_refused)


async def test_a_snapshot_removes_users_the_authority_no_longer_has(
    client: Client, make_member: MakeMember, sync: Sync, db: Any
) -> None:
    kept = await make_member()
    gone = await make_member()
    later = datetime.now(UTC) + timedelta(seconds=5)
    await sync([UserSnapshot(user_ids=[kept.id], profile_types=["standard"], taken_at=later)])
    assert await db.fetchval("SELECT count(*) FROM app_user WHERE id = $1", gone.id) == 0
    assert await db.fetchval("SELECT count(*) FROM app_user WHERE id = $1", kept.id) == 1

    async def gone_refused() -> bool:
        return await _status(client, gone.headers) == 401

    await eventually(gone_refused)
    assert await _status(client, kept.headers) == 200


async def test_a_snapshot_keeps_users_synced_after_it_was_taken(
    make_member: MakeMember, sync: Sync, db: Any
) -> None:
    member = await make_member()
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    await sync([UserSnapshot(user_ids=[], profile_types=[], taken_at=earlier)])
    assert await db.fetchval("SELECT count(*) FROM app_user WHERE id = $1", member.id) == 1

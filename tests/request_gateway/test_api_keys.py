"""API keys: shown once, stored hashed, listed without secrets, revoked and expired keys refused."""

from __future__ import annotations

from typing import Any

from servicekit.testing import eventually
from tests.request_gateway.conftest import Client, MakeMember


async def _create(client: Client, headers: dict[str, str], name: str = "script") -> Any:
    response = await client.post("/api/v1/api-keys", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_key_is_shown_once_and_works_as_x_api_key(
    client: Client, make_member: MakeMember, db: Any
) -> None:
    member = await make_member()
    created = await _create(client, member.headers)
    key = created["key"]
    assert key.startswith(created["api_key"]["prefix"] + "_")
    listed = await client.get("/api/v1/api-keys", headers=member.headers)
    assert key not in listed.text
    assert [item["prefix"] for item in listed.json()] == [created["api_key"]["prefix"]]
    stored = await db.fetchval("SELECT key_hash FROM api_key")
    assert key.encode() not in bytes(stored)
    me = await client.get("/api/v1/me", headers={"X-API-Key": key})
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(member.id)
    used = await db.fetchval("SELECT last_used_at FROM api_key")
    assert used is not None


async def test_a_revoked_key_is_refused_at_once(client: Client, make_member: MakeMember) -> None:
    member = await make_member()
    created = await _create(client, member.headers)
    headers = {"X-API-Key": created["key"]}
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    revoked = await client.delete(
        f"/api/v1/api-keys/{created['api_key']['id']}", headers=member.headers
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    async def refused() -> bool:
        return (await client.get("/api/v1/me", headers=headers)).status_code == 401

    await eventually(refused)


async def test_an_expired_key_is_refused(client: Client, make_member: MakeMember, db: Any) -> None:
    member = await make_member()
    created = await _create(client, member.headers)
    await db.execute("UPDATE api_key SET expires_at = now() - interval '1 second'")
    await db.execute("SELECT pg_notify('gateway_identity', 'api_keys')")

    async def refused() -> bool:
        response = await client.get("/api/v1/me", headers={"X-API-Key": created["key"]})
        return response.status_code == 401

    await eventually(refused)


async def test_unknown_and_malformed_keys_are_refused(client: Client) -> None:
    for key in ["ak_00000000_" + "A" * 43, "not-a-key", "x" * 5000]:
        response = await client.get("/api/v1/me", headers={"X-API-Key": key})
        assert response.status_code == 401


async def test_two_credentials_at_once_are_refused(client: Client, make_member: MakeMember) -> None:
    member = await make_member()
    created = await _create(client, member.headers)
    response = await client.get(
        "/api/v1/me", headers={**member.headers, "X-API-Key": created["key"]}
    )
    assert response.status_code == 401


async def test_live_keys_per_user_are_limited(
    client: Client, make_member: MakeMember, settings: Any
) -> None:
    member = await make_member()
    for number in range(settings.max_api_keys):
        await _create(client, member.headers, f"key {number}")
    refused = await client.post(
        "/api/v1/api-keys", json={"name": "one more"}, headers=member.headers
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "too_many_api_keys"


async def test_a_name_the_database_cannot_hold_is_a_validation_error(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    refused = await client.post(
        "/api/v1/api-keys", json={"name": "nul\u0000"}, headers=member.headers
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "validation_error"


async def test_keys_expire_after_the_configured_days_at_most(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    response = await client.post(
        "/api/v1/api-keys", json={"name": "long", "expires_in_days": 10_000}, headers=member.headers
    )
    body = response.json()["api_key"]
    from datetime import datetime

    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(
        body["created_at"]
    )
    assert 89 <= lifetime.days <= 90


async def test_another_users_key_cannot_be_revoked(client: Client, make_member: MakeMember) -> None:
    owner = await make_member()
    other = await make_member()
    created = await _create(client, owner.headers)
    response = await client.delete(
        f"/api/v1/api-keys/{created['api_key']['id']}", headers=other.headers
    )
    assert response.status_code == 404


async def test_key_creation_and_revocation_are_audited(
    client: Client, make_member: MakeMember, db: Any
) -> None:
    member = await make_member()
    created = await _create(client, member.headers)
    await client.delete(f"/api/v1/api-keys/{created['api_key']['id']}", headers=member.headers)
    rows = await db.fetch(
        "SELECT action, details::text AS details FROM audit_log WHERE action LIKE 'api_key%'"
    )
    assert [row["action"] for row in rows] == ["api_key_created", "api_key_revoked"]
    assert all(created["key"] not in row["details"] for row in rows)

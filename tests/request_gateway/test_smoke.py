"""The gateway starts, syncs a user, takes a request and exports it."""

from __future__ import annotations

from tests.request_gateway.conftest import Client, MakeMember


async def test_health_reports_every_dependency(client: Client, ops: Client) -> None:
    response = await ops.get("/health")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) >= {"database", "redis", "outbox", "inbox"}


async def test_a_synced_user_submits_a_request(client: Client, make_member: MakeMember) -> None:
    member = await make_member()
    response = await client.post(
        "/api/v1/requests", json={"type": "echo", "payload": {"a": 1}}, headers=member.headers
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["payload"] == {"a": 1}
    read = await client.get(f"/api/v1/requests/{body['id']}", headers=member.headers)
    assert read.status_code == 200
    assert read.json()["id"] == body["id"]

"""The admin API: roles per route, validation errors, conflicts, and sync of every change."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from response_processor.domain.bootstrap import read_seed, seed_profile_types
from response_processor.settings import ProcessorSettings
from servicekit.database import Connection
from tests.response_processor.conftest import Client, MakeMember
from tests.response_processor.linkside import exported_records


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users", {}),
        ("GET", "/api/v1/profile-types", None),
        ("PATCH", "/api/v1/profile-types/standard", {"burst": 3}),
        ("GET", "/api/v1/requests", None),
        ("GET", "/api/v1/dead-letters", None),
        ("POST", "/api/v1/documents", []),
        ("GET", "/api/v1/audit", None),
    ],
)
async def test_a_plain_user_has_no_access_here(
    client: Client, make_member: MakeMember, method: str, path: str, body: Any
) -> None:
    member = await make_member(["user"])
    response = await client.request(method, path, json=body, headers=member.headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_operators_read_but_do_not_manage(client: Client, make_member: MakeMember) -> None:
    operator = await make_member(["operator"])
    assert (await client.get("/api/v1/users", headers=operator.headers)).status_code == 200
    assert (await client.get("/api/v1/requests", headers=operator.headers)).status_code == 200
    denied = await client.patch(
        "/api/v1/profile-types/standard", json={"burst": 3}, headers=operator.headers
    )
    assert denied.status_code == 403
    assert (await client.get("/api/v1/audit", headers=operator.headers)).status_code == 403


async def _walk(client: Client, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    """Every item of a listing, a page of 2 at a time, following `next_cursor`."""
    items: list[Any] = []
    cursor = None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        if (cursor := response.json()["next_cursor"]) is None:
            return items


async def test_users_and_audit_page_with_cursors_and_miss_nothing(
    client: Client, admin: dict[str, str], make_member: MakeMember
) -> None:
    made = [(await make_member()).username for _ in range(5)]
    usernames = [user["username"] for user in await _walk(client, "/api/v1/users", admin)]
    assert usernames == sorted(usernames)
    assert set(made) <= set(usernames)
    assert len(usernames) == len(set(usernames))
    entries = await _walk(client, "/api/v1/audit", admin, action="user_created")
    assert [entry["id"] for entry in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert {entry["target"] for entry in entries} == {f"user:{name}" for name in made}
    assert len(entries) == len(made)
    bad = await client.get("/api/v1/users", params={"cursor": "nonsense"}, headers=admin)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cursor"


async def test_nobody_gets_in_without_credentials(client: Client) -> None:
    response = await client.get("/api/v1/users")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_creating_a_user_validates_every_field(client: Client, admin: dict[str, str]) -> None:
    bad = await client.post(
        "/api/v1/users",
        json={"username": "x", "password": "p", "roles": ["root"], "profile_type": "standard"},
        headers=admin,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"
    assert "p" not in str(bad.json()["error"]["details"]).split("'")  # the password is not echoed
    weak = await client.post(
        "/api/v1/users",
        json={"username": "valid-name", "password": "password", "roles": ["user"],
              "profile_type": "standard"},
        headers=admin,
    )  # fmt: skip
    assert weak.status_code == 400
    assert weak.json()["error"]["code"] == "weak_password"
    unknown_type = await client.post(
        "/api/v1/users",
        json={"username": "valid-name", "password": "a fine long password 1",
              "roles": ["user"], "profile_type": "nonexistent"},
        headers=admin,
    )  # fmt: skip
    assert unknown_type.status_code == 409
    assert unknown_type.json()["error"]["code"] == "profile_type_unknown"


async def test_usernames_are_unique_regardless_of_case(
    client: Client, admin: dict[str, str], make_member: MakeMember
) -> None:
    member = await make_member()
    again = await client.post(
        "/api/v1/users",
        json={"username": member.username.upper(), "password": "a fine long password 1",
              "roles": ["user"], "profile_type": "standard"},
        headers=admin,
    )  # fmt: skip
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "username_taken"


async def test_every_user_change_is_synced_with_a_higher_version(
    client: Client, admin: dict[str, str], make_member: MakeMember, settings: ProcessorSettings
) -> None:
    member = await make_member()
    await client.patch(f"/api/v1/users/{member.id}", json={"active": False}, headers=admin)
    records = [r for r in await exported_records(settings, "user") if r["id"] == str(member.id)]
    assert [(r["version"], r["active"]) for r in records] == [(1, True), (2, False)]
    assert records[0]["password_hash"].startswith("$argon2id$")


async def test_an_admin_reset_can_revoke_the_users_api_keys_through_the_sync_record(
    client: Client, admin: dict[str, str], make_member: MakeMember, settings: ProcessorSettings
) -> None:
    member = await make_member()
    reset = {"password": "reset by admin 12345", "revoke_api_keys": True}
    assert (
        await client.patch(f"/api/v1/users/{member.id}", json=reset, headers=admin)
    ).status_code == 200
    plain = {"password": "reset again 123456"}
    await client.patch(f"/api/v1/users/{member.id}", json=plain, headers=admin)
    records = [r for r in await exported_records(settings, "user") if r["id"] == str(member.id)]
    # Only the record of the change that asked for it carries the event.
    assert [(r["version"], r.get("revoke_api_keys")) for r in records] == [
        (1, None),
        (2, True),
        (3, None),
    ]
    audit = await client.get("/api/v1/audit?action=user_updated", headers=admin)
    assert any(entry["details"].get("api_keys_revoked") for entry in audit.json()["items"])


async def test_profile_types_are_created_changed_and_synced(
    client: Client, admin: dict[str, str], settings: ProcessorSettings
) -> None:
    body = {
        "name": "analysts",
        "requests_per_minute": 120,
        "burst": 30,
        "allowed_request_types": ["echo", "documents.search"],
        "max_payload_bytes": 10000,
        "max_pending_requests": 50,
    }
    created = await client.post("/api/v1/profile-types", json=body, headers=admin)
    assert created.status_code == 201, created.text
    duplicate = await client.post("/api/v1/profile-types", json=body, headers=admin)
    assert duplicate.status_code == 409
    changed = await client.patch("/api/v1/profile-types/analysts", json={"burst": 5}, headers=admin)
    assert changed.json()["burst"] == 5
    assert changed.json()["version"] == 2
    synced = [
        r for r in await exported_records(settings, "profile_type") if r["name"] == "analysts"
    ]
    assert [r["version"] for r in synced] == [1, 2]
    missing = await client.patch("/api/v1/profile-types/nope", json={"burst": 5}, headers=admin)
    assert missing.status_code == 404


async def test_first_start_seeded_the_default_profile_types_once(
    client: Client, admin: dict[str, str], db: Connection
) -> None:
    names = [p["name"] for p in (await client.get("/api/v1/profile-types", headers=admin)).json()]
    assert {"standard", "restricted"} <= set(names)
    # An operator's change survives a restart's seeding.
    await client.patch("/api/v1/profile-types/restricted", json={"burst": 1}, headers=admin)
    assert await seed_profile_types(db, read_seed()) == []
    restricted = await client.get("/api/v1/profile-types/restricted", headers=admin)
    assert restricted.json()["burst"] == 1


async def test_the_audit_log_cannot_be_rewritten(db: Connection, admin: dict[str, str]) -> None:
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("DELETE FROM audit_log")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("UPDATE audit_log SET action = 'nothing'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("TRUNCATE audit_log")


async def test_unknown_ids_are_404(client: Client, admin: dict[str, str]) -> None:
    for path in (f"/api/v1/users/{uuid.uuid4()}", f"/api/v1/requests/{uuid.uuid4()}"):
        response = await client.get(path, headers=admin)
        assert response.status_code == 404


async def test_operators_see_the_batches_that_crossed(
    client: Client, admin: dict[str, str], make_member: MakeMember, settings: ProcessorSettings
) -> None:
    operator = await make_member(["operator"])
    await exported_records(settings, "user")  # the worker's exporter, run once
    outbound = await client.get("/api/v1/batches/outbound", headers=operator.headers)
    assert outbound.status_code == 200
    [batch] = outbound.json()["items"]
    assert batch["peer"] == "request-net"
    assert batch["record_count"] >= 3  # two seeded profile types, the admin, the operator
    assert batch["acknowledged_at"] is None
    inbound = await client.get("/api/v1/batches/inbound", headers=operator.headers)
    assert inbound.json() == {"items": [], "next_cursor": None}


async def test_metrics_include_the_database_pool(client: Client, ops: Client) -> None:
    text = (await ops.get("/metrics")).text
    assert 'db_pool_connections{state="max"} 10.0' in text

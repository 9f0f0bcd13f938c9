"""The user portal over HTTP (no browser): sign in with the API's login, submit with the
API's rules (errors beside the field), list, cancel, API keys shown once, limits."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import msgspec

from tests.request_gateway.conftest import (
    PASSWORD,
    Client,
    MakeMember,
    Sync,
    profile_type,
    user_record,
)

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def post_form(
    client: Client, path: str, fields: dict[str, Any], page: str | None = None
) -> httpx.Response:
    html = (await client.get(page or path)).text
    match = CSRF.search(html)
    assert match, f"no CSRF field on {page or path}"
    return await client.post(
        path, data={**fields, "_csrf_token": match.group(1)}, follow_redirects=False
    )


async def test_a_user_signs_in_submits_follows_and_cancels(
    client: Client, make_member: MakeMember, db: asyncpg.Connection[Any]
) -> None:
    member = await make_member()
    assert (await client.get("/portal/", follow_redirects=False)).status_code == 303
    signed_in = await post_form(
        client, "/portal/login", {"username": member.username, "password": PASSWORD}
    )
    assert signed_in.status_code == 303
    assert "samesite=strict" in signed_in.headers["set-cookie"].lower()
    home = await client.get("/portal/")
    assert "Requests per minute" in home.text
    assert "unsafe-inline" not in home.headers["content-security-policy"]

    bad = await post_form(client, "/portal/requests", {"type": "echo", "payload": "{oops"})
    assert bad.status_code == 400
    assert "Not valid JSON" in bad.text
    refused = await post_form(client, "/portal/requests", {"type": "shell", "payload": "{}"})
    assert refused.status_code == 400
    assert "does not allow requests of type" in refused.text

    submitted = await post_form(
        client, "/portal/requests", {"type": "echo", "payload": '{"hello": "portal"}'}
    )
    assert submitted.status_code == 303, submitted.text
    detail = await client.get(submitted.headers["location"])
    assert "queued" in detail.text
    assert 'data-refresh-seconds="2"' in detail.text
    listing = await client.get("/portal/requests?status=queued")
    assert "echo" in listing.text
    cancelled = await post_form(
        client,
        f"{submitted.headers['location']}/cancel",
        {},
        page=submitted.headers["location"],
    )
    assert cancelled.status_code == 303
    assert "Request cancelled." in (await client.get(cancelled.headers["location"])).text
    status = await db.fetchval("SELECT status FROM request WHERE user_id = $1", member.id)
    assert status == "cancelled"


async def test_an_api_key_is_shown_once_works_and_can_be_revoked(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    await post_form(client, "/portal/login", {"username": member.username, "password": PASSWORD})
    created = await post_form(client, "/portal/api-keys", {"name": "laptop"})
    assert created.status_code == 200
    key = re.search(r'<code id="new-key">([^<]+)</code>', created.text)
    assert key is not None
    me = await client.get("/api/v1/me", headers={"X-API-Key": key.group(1)})
    assert me.status_code == 200
    listing = await client.get("/portal/api-keys")
    assert key.group(1) not in listing.text
    key_id = re.search(r"/portal/api-keys/([0-9a-f-]{36})/revoke", listing.text)
    assert key_id is not None
    revoked = await post_form(
        client, f"/portal/api-keys/{key_id.group(1)}/revoke", {}, page="/portal/api-keys"
    )
    assert revoked.status_code == 303
    assert (await client.get("/api/v1/me", headers={"X-API-Key": key.group(1)})).status_code == 401


async def test_a_user_who_must_change_the_password_sees_only_that_page(
    client: Client, sync: Sync
) -> None:
    record = await user_record("mustchange", must_change_password=True)
    await sync([profile_type(), record])
    signed_in = await post_form(
        client, "/portal/login", {"username": "mustchange", "password": PASSWORD}
    )
    assert signed_in.status_code == 303
    for path in ("/portal/", "/portal/requests", "/portal/api-keys"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/portal/password"
    page = await client.get("/portal/password")
    assert "Your password must be changed" in page.text


async def test_a_deactivation_synced_from_the_processor_ends_the_portal_session(
    client: Client, sync: Sync, make_member: MakeMember
) -> None:
    member = await make_member()
    await post_form(client, "/portal/login", {"username": member.username, "password": PASSWORD})
    assert (await client.get("/portal/")).status_code == 200
    deactivated = msgspec.structs.replace(member.record, active=False, version=2)
    await sync([deactivated])
    ended = await client.get("/portal/", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/portal/login?ended=true"

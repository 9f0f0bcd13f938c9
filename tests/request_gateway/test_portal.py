"""The user portal over HTTP (no browser): sign in with the API's login, submit with the
API's rules (errors beside the field), list, filter, cancel, API keys shown once, limits;
and, against a live server, the event stream its pages follow with the session cookie."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from request_gateway.runtime import prepare_database
from servicekit.testing import MakeDatabase, eventually
from tests.request_gateway.conftest import (
    PASSWORD,
    Client,
    MakeMember,
    Sync,
    profile_type,
    user_record,
)
from tests.request_gateway.live import LiveGateway, Member, live_settings, serve
from tests.request_gateway.test_live_updates import EventReader

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
EVENTS_URL = re.compile(r'data-events="([^"]+)"')
STREAMS_PER_USER = 2


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
    # The page names the portal's stream of the changes after the ones it shows.
    assert re.search(r'data-events="/portal/requests/events\?last_event_id=[0-9]+"', detail.text)
    assert "reload the page" in detail.text  # without scripts
    listing = await client.get("/portal/requests?status=queued")
    assert "echo" in listing.text
    assert "No requests." in (await client.get("/portal/requests?status=completed")).text
    assert (await client.get("/portal/requests?status=nonsense")).status_code == 400
    cancelled = await post_form(
        client,
        f"{submitted.headers['location']}/cancel",
        {},
        page=submitted.headers["location"],
    )
    assert cancelled.status_code == 303
    after = await client.get(cancelled.headers["location"])
    assert "Request cancelled." in after.text
    assert "data-events" not in after.text  # final: nothing left to follow
    assert 'id="request-cancel"' not in after.text
    status = await db.fetchval("SELECT status FROM request WHERE user_id = $1", member.id)
    assert status == "cancelled"
    listing = await client.get("/portal/requests?status=cancelled")
    assert f'data-status-of="{detail.url.path.rsplit("/", 1)[1]}">cancelled<' in listing.text


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

    # Revoked at once in the database; the cache drops the key when the notification arrives.
    async def refused() -> bool:
        me = await client.get("/api/v1/me", headers={"X-API-Key": key.group(1)})
        return me.status_code == 401

    await eventually(refused, what="the revoked key to be refused")


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

    # The cache forgets the user when the sync's notification arrives, a moment after.
    async def ended() -> httpx.Response | None:
        response = await client.get("/portal/", follow_redirects=False)
        return response if response.status_code != 200 else None

    answer = await eventually(ended, what="the portal session to end")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/login?ended=true"


@pytest.fixture(scope="module")
def live(
    postgres_module_database: MakeDatabase,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveGateway]:
    """One server process, so that the per-user bound (per process) is the one we see."""
    database_url = postgres_module_database(prepare_database, key="request-gateway")
    settings = live_settings(tmp_path_factory.mktemp("portal-live"), database_url, redis_server_url)
    with serve(
        settings,
        workers=1,
        GATEWAY_MAX_OPEN_WAITS_PER_USER=str(STREAMS_PER_USER),
        GATEWAY_EVENT_KEEPALIVE_S="1",  # a test reads a keep-alive
    ) as gateway:
        yield gateway
        assert gateway.stop() == 0, gateway.output()


@contextlib.asynccontextmanager
async def portal_session(live: LiveGateway, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in on the portal (its session cookie in the jar)."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        form = await client.get("/portal/login")
        token = CSRF.search(form.text)
        assert token, form.text
        signed_in = await client.post(
            "/portal/login",
            data={"username": member.username, "password": PASSWORD, "_csrf_token": token.group(1)},
        )
        assert signed_in.status_code == 303, signed_in.text
        yield client


@contextlib.asynccontextmanager
async def portal_stream(client: httpx.AsyncClient, url: str) -> AsyncIterator[EventReader]:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        assert (await reader.next()).comments == ["ready"]
        yield reader


async def answer_to(client: httpx.AsyncClient, url: str, **headers: str) -> tuple[int, str, str]:
    """Status, location and the start of the body, without reading on (a stream would not end)."""
    async with client.stream("GET", url, headers=headers) as response:
        start = b""
        if response.status_code != 200:
            start = await response.aread()

        return response.status_code, response.headers.get("location", ""), start.decode()


async def test_the_portal_streams_the_session_users_changes_from_what_the_page_showed(
    live: LiveGateway,
) -> None:
    member, other = await live.member(), await live.member()
    async with (
        portal_session(live, member) as portal,
        httpx.AsyncClient(base_url=live.url, timeout=30) as api,
    ):
        submitted = await api.post(
            "/api/v1/requests", json={"type": "echo", "payload": {}}, headers=member.headers
        )
        request_id = submitted.json()["id"]
        page = await portal.get(f"/portal/requests/{request_id}")
        found = EVENTS_URL.search(page.text)
        assert found, page.text
        events_url = html.unescape(found.group(1))
        # Changed after the page was made, before its script connects: not missed.
        cancelled = await api.delete(f"/api/v1/requests/{request_id}", headers=member.headers)
        assert cancelled.status_code == 200, cancelled.text
        async with portal_stream(portal, events_url) as reader:
            caught_up = (await reader.next_request()).request()
            assert (caught_up["id"], caught_up["status"]) == (request_id, "cancelled")
            # Another user's change is not this stream's; the user's next one comes live.
            await api.post(
                "/api/v1/requests", json={"type": "echo", "payload": {}}, headers=other.headers
            )
            mine = await api.post(
                "/api/v1/requests", json={"type": "echo", "payload": {}}, headers=member.headers
            )
            live_change = (await reader.next_request()).request()
            assert (live_change["id"], live_change["status"]) == (mine.json()["id"], "queued")


async def test_the_portal_stream_needs_the_session_and_has_the_apis_bounds(
    live: LiveGateway,
) -> None:
    member = await live.member()
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as stranger:
        # Page routes take no bearer token: without a session it is the sign-in page.
        refused = await answer_to(stranger, "/portal/requests/events", **member.headers)
        assert refused[:2] == (303, "/portal/login?next=%2Fportal%2Frequests%2Fevents")
    async with (
        portal_session(live, member) as portal,
        httpx.AsyncClient(base_url=live.url, timeout=30) as api,
    ):
        assert (await answer_to(portal, "/portal/requests/events?last_event_id=-1"))[0] == 400
        # One API stream and one portal stream fill the user's share: the next is refused
        # before it starts, whichever door it comes through.
        async with (
            api.stream("GET", "/api/v1/requests/events", headers=member.headers) as first,
            portal_stream(portal, "/portal/requests/events") as portal_events,
        ):
            assert first.status_code == 200
            # (kept: a reader dropped here would close its stream when collected)
            first_events = EventReader(first)
            await first_events.next()
            status, _, body = await answer_to(portal, "/portal/requests/events")
            assert status == 429
            assert "too_many_waits" in body
            # The refusal ended neither open stream.
            assert (await portal_events.next()).comments == ["keep-alive"]


async def test_streams_closed_and_opened_again_at_once_are_let_in(live: LiveGateway) -> None:
    # The server sees a closed connection go a moment after the client closed it; a client
    # reconnecting at once (a page that navigates) is not refused for its own old streams.
    member = await live.member()
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as api:
        for _ in range(5):
            async with contextlib.AsyncExitStack() as streams:
                readers = []  # held: a reader collected early would close its stream
                for _ in range(STREAMS_PER_USER):
                    opened = await streams.enter_async_context(
                        api.stream("GET", "/api/v1/requests/events", headers=member.headers)
                    )
                    assert opened.status_code == 200, await opened.aread()
                    readers.append(EventReader(opened))
                    await readers[-1].next()

"""Answers without polling, in one process: `Location`, `?wait=` long polls woken by the
change notification, their limits, and the change numbers a trigger gives every request.

Litestar's test client answers one request at a time (it blocks the event loop), so these
tests call the app through httpx's ASGI transport, in the test's loop, with its lifespan.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from airlink.records import Response
from request_gateway.app import create_app
from request_gateway.changes import ChangeFeed
from request_gateway.domain import requests
from request_gateway.runtime import Runtime
from request_gateway.settings import GatewaySettings
from servicekit.errors import ApiError
from servicekit.testing import eventually
from tests.request_gateway.conftest import (
    PASSWORD,
    FakeProcessor,
    MakeMember,
    Member,
    Sync,
    login,
    profile_type,
    user_record,
)

PATH = "/api/v1/requests"


@asynccontextmanager
async def serving(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop, its lifespan running, and a client calling it."""
    app = create_app(settings)
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:  # in one task: anyio's scopes end where they began
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await asyncio.wait(
        [lifespan, asyncio.ensure_future(started.wait())], return_when="FIRST_COMPLETED"
    )
    if lifespan.done():
        lifespan.result()  # the start-up's error
    try:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    finally:
        stop.set()
        await lifespan


@pytest.fixture
async def client(  # the conftest's, replaced: its make_member signs in through this one
    settings: GatewaySettings, processor: FakeProcessor
) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as client:
        yield client


async def _submit(client: httpx.AsyncClient, member: Member, payload: Any = None) -> dict[str, Any]:
    response = await client.post(
        PATH, json={"type": "echo", "payload": payload or {"n": 1}}, headers=member.headers
    )
    assert response.status_code == 202, response.text
    made: dict[str, Any] = response.json()
    return made


def _response(request_id: str) -> Response:
    return Response(
        request_id=uuid.UUID(request_id),
        status="completed",
        result={"answered": True},
        error=None,
        finished_at=datetime.now(UTC),
        trace_id="t",
    )


def _app(client: httpx.AsyncClient) -> Litestar:
    app: Litestar = client.app  # type: ignore[attr-defined]
    return app


def _feed(client: httpx.AsyncClient) -> ChangeFeed:
    feed: ChangeFeed = _app(client).state.changes
    return feed


async def _waiting(client: httpx.AsyncClient, count: int) -> None:
    async def held() -> bool:
        return _feed(client)._open == count

    await eventually(held)


async def test_a_submit_answers_202_with_the_location_of_its_request(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    member = await make_member()
    response = await client.post(PATH, json={"type": "echo", "payload": {}}, headers=member.headers)
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location == f"{PATH}/{response.json()['id']}"
    assert (await client.get(location, headers=member.headers)).json() == response.json()


async def test_an_idempotent_replay_names_the_same_location(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    member = await make_member()
    headers = {**member.headers, "Idempotency-Key": "k-1"}
    body = {"type": "echo", "payload": {}}
    first = await client.post(PATH, json=body, headers=headers)
    again = await client.post(PATH, json=body, headers=headers)
    assert again.status_code == 200
    assert again.headers["Location"] == first.headers["Location"]


async def test_a_long_poll_answers_when_the_response_is_applied_holding_no_connection(
    client: httpx.AsyncClient, make_member: MakeMember, link_runtime: Runtime, sync: Sync
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    await link_runtime.link.export_once()
    waiting = asyncio.create_task(
        client.get(f"{PATH}/{made['id']}", params={"wait": 60}, headers=member.headers)
    )
    await _waiting(client, 1)
    pool = _app(client).state.runtime.pool
    assert pool.get_size() == pool.get_idle_size(), "a waiter holds a pooled connection"

    await sync([_response(made["id"])])
    answer = await waiting
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["response"]) == ("completed", {"answered": True})
    assert _feed(client)._open == 0


async def test_a_long_poll_on_a_final_request_answers_at_once(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    await client.delete(f"{PATH}/{made['id']}", headers=member.headers)
    answer = await client.get(f"{PATH}/{made['id']}?wait=60", headers=member.headers)
    assert answer.json()["status"] == "cancelled"


async def test_a_long_poll_ends_with_the_pending_request_when_its_wait_is_over(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    answer = await client.get(f"{PATH}/{made['id']}?wait=1", headers=member.headers)
    assert (answer.status_code, answer.json()["status"]) == (200, "queued")


async def test_a_status_change_that_is_not_final_does_not_end_a_long_poll(
    client: httpx.AsyncClient, make_member: MakeMember, link_runtime: Runtime
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    waiting = asyncio.create_task(client.get(f"{PATH}/{made['id']}?wait=2", headers=member.headers))
    await _waiting(client, 1)
    await link_runtime.link.export_once()  # queued -> exported wakes the waiter, which waits on
    assert (await waiting).json()["status"] == "exported"


@pytest.mark.parametrize("wait", ["61", "-1", "soon", "1.5"])
async def test_a_wait_outside_0_to_60_seconds_is_refused(
    client: httpx.AsyncClient, make_member: MakeMember, wait: str
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    answer = await client.get(f"{PATH}/{made['id']}?wait={wait}", headers=member.headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "validation_error"


async def test_a_long_poll_on_another_users_request_is_not_found(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    owner, other = await make_member(), await make_member()
    made = await _submit(client, owner)
    answer = await client.get(f"{PATH}/{made['id']}?wait=60", headers=other.headers)
    assert answer.status_code == 404
    assert _feed(client)._open == 0


async def test_open_waits_are_bounded_per_user_and_are_not_submits(
    client: httpx.AsyncClient, make_member: MakeMember, settings: GatewaySettings
) -> None:
    single = profile_type("single", rpm=1, burst=1)
    member = await make_member(profile=single)
    other = await make_member()
    made = await _submit(client, other)
    own = await _submit(client, member)  # spends the only submit of the burst
    url = f"{PATH}/{own['id']}?wait=3"
    waits = [
        asyncio.create_task(client.get(url, headers=member.headers))
        for _ in range(settings.max_open_waits_per_user)
    ]
    await _waiting(client, settings.max_open_waits_per_user)
    refused = await client.get(url, headers=member.headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_waits"
    # Another user still has room, and no wait spent a submit of theirs.
    theirs = await client.get(f"{PATH}/{made['id']}?wait=1", headers=other.headers)
    assert theirs.status_code == 200
    assert {(await wait).status_code for wait in waits} == {200}
    over = await client.post(PATH, json={"type": "echo", "payload": {}}, headers=member.headers)
    assert over.status_code == 429  # the burst of 1 went on the submit, not on the waits


async def test_a_process_full_of_waits_answers_503_with_retry_after(
    settings: GatewaySettings, processor: FakeProcessor, sync: Sync
) -> None:
    small = GatewaySettings(
        **{**_fields(settings), "max_open_waits": 1, "max_open_waits_per_user": 5}
    )
    record = await user_record(f"u{uuid.uuid4().hex[:10]}")
    await sync([profile_type(), record])
    async with serving(small) as client:
        tokens = await login(client, record.username, PASSWORD)  # type: ignore[arg-type]
        member = Member(record.id, record.username, tokens, record)
        made = await _submit(client, member)
        url = f"{PATH}/{made['id']}?wait=2"
        first = asyncio.create_task(client.get(url, headers=member.headers))
        await _waiting(client, 1)
        refused = await client.get(url, headers=member.headers)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "waits_unavailable"
        assert refused.headers["Retry-After"] == "1"
        assert (await first).status_code == 200


def _fields(settings: GatewaySettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}


async def test_every_visible_change_takes_the_next_number_of_its_user(
    client: httpx.AsyncClient, make_member: MakeMember, link_runtime: Runtime, sync: Sync,
    db: asyncpg.Connection[Any],
) -> None:  # fmt: skip
    member, other = await make_member(), await make_member()
    first = await _submit(client, member)
    second = await _submit(client, member)
    await _submit(client, other)
    changes = await requests.changes_since(db, member.id, 0, 10)
    assert [(change.seq, str(change.request.id)) for change in changes] == [
        (1, first["id"]), (2, second["id"]),
    ]  # fmt: skip
    await link_runtime.link.export_once()  # both exported: numbers 3 and 4
    await sync([_response(first["id"])])  # first completed: number 5
    changes = await requests.changes_since(db, member.id, 2, 10)
    assert [(change.seq, change.request.status) for change in changes] == [
        (4, "exported"), (5, "completed"),
    ]  # fmt: skip
    assert await requests.latest_change(db, member.id) == 5
    assert await requests.latest_change(db, other.id) == 2
    assert await requests.latest_change(db, uuid.uuid4()) == 0


async def test_a_change_notifies_its_user_when_it_commits(
    client: httpx.AsyncClient,
    make_member: MakeMember,
    database_url: str,
    db: asyncpg.Connection[Any],
) -> None:
    member = await make_member()
    heard: list[str] = []
    await db.add_listener("gateway_requests", lambda *args: heard.append(args[3]))
    made = await _submit(client, member)

    async def heard_times(count: int) -> None:
        async def check() -> bool:
            return heard == [str(member.id)] * count

        await eventually(check)

    await heard_times(1)  # the submit's
    writer = await asyncpg.connect(database_url)
    try:
        async with writer.transaction():
            await writer.execute(
                "UPDATE request SET status = 'exported' WHERE id = $1", uuid.UUID(made["id"])
            )
            await writer.execute("SELECT pg_sleep(0.2)")
            assert len(heard) == 1  # the update's waits for its COMMIT
    finally:
        await writer.close()
    await heard_times(2)


def test_waiters_recheck_without_a_listener_and_wake_only_on_their_users_changes() -> None:

    async def scenario() -> None:
        feed = ChangeFeed(per_user=2, per_process=4)
        user = uuid.uuid4()
        with await feed.open(user) as watch:
            watch.arm()
            assert not await watch.wait(0.01)  # not listening: a short re-check
            feed.wake_all()
            assert await watch.wait(60)
            watch.arm()
            feed.wake(str(uuid.uuid4()))  # someone else's change
            assert not watch.changed.is_set()
            feed.wake(str(user))
            assert watch.changed.is_set()
            feed.wake("not a user id")  # ignored, logged
        assert feed._open == 0

    asyncio.run(scenario())


def test_a_full_share_waits_a_moment_for_one_of_its_waits_to_end() -> None:
    # A client that closes a stream and reconnects at once arrives before the server has
    # seen the old connection go: its new wait is let in when the old one ends.
    async def scenario() -> None:
        feed = ChangeFeed(per_user=1, per_process=4)
        user = uuid.uuid4()
        old = await feed.open(user)
        asyncio.get_running_loop().call_later(0.05, old.__exit__, None, None, None)
        with await feed.open(user):
            assert feed._open == 1
            # Nobody lets go: refused after the grace, as before.
            with pytest.raises(ApiError) as refused:
                await feed.wait_for_room(user, grace_s=0.05)
            assert refused.value.status_code == 429
            # Another user is not kept waiting by this one's share.
            with await feed.open(uuid.uuid4()):
                assert feed._open == 2
        assert feed._open == 0

    asyncio.run(scenario())


LISTENERS_SQL = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND query = 'LISTEN "gateway_requests"'
"""


async def test_a_dropped_listener_reconnects_and_its_waiters_still_get_their_answer(
    client: httpx.AsyncClient, make_member: MakeMember, link_runtime: Runtime, sync: Sync,
    db: asyncpg.Connection[Any],
) -> None:  # fmt: skip
    member = await make_member()
    made = await _submit(client, member)
    await link_runtime.link.export_once()
    waiting = asyncio.create_task(
        client.get(f"{PATH}/{made['id']}", params={"wait": 60}, headers=member.headers)
    )
    await _waiting(client, 1)
    [old] = [row["pid"] for row in await db.fetch(LISTENERS_SQL)]
    assert await db.fetchval("SELECT pg_terminate_backend($1)", old)

    async def listening_again() -> bool:
        pids = [row["pid"] for row in await db.fetch(LISTENERS_SQL)]
        return _feed(client).listening and pids != [] and old not in pids

    await eventually(listening_again)
    await sync([_response(made["id"])])
    assert (await waiting).json()["status"] == "completed"


async def test_one_users_change_numbers_are_committed_in_their_order(
    client: httpx.AsyncClient, make_member: MakeMember, database_url: str,
    db: asyncpg.Connection[Any],
) -> None:  # fmt: skip
    """A reader that saw number n never later finds a smaller one committed: the second of
    two concurrent changes of one user waits for the first to commit before it is numbered."""
    member = await make_member()
    first, second = await _submit(client, member), await _submit(client, member)
    update = "UPDATE request SET status = 'exported' WHERE id = $1"
    early, late = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        opened = early.transaction()
        await opened.start()
        await early.execute(update, uuid.UUID(first["id"]))
        blocked = asyncio.create_task(late.execute(update, uuid.UUID(second["id"])))

        async def late_waits_for_the_lock() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE pid = $1 AND wait_event_type = 'Lock'",
                    late.get_server_pid(),
                )
            )

        await eventually(late_waits_for_the_lock)
        assert [change.seq for change in await requests.changes_since(db, member.id, 2, 10)] == []
        await opened.commit()
        await blocked
    finally:
        await early.close()
        await late.close()
    changes = await requests.changes_since(db, member.id, 2, 10)
    assert [(str(change.request.id), change.seq) for change in changes] == [
        (first["id"], 3), (second["id"], 4),
    ]  # fmt: skip

"""Answers without polling across processes: `request-gateway serve` with two server
processes, the link run by another process (this test's runtime, as the worker would), long
polls woken in whichever process holds them, the event stream with its resume, and a
shutdown that ends what is open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from airlink.records import Response
from request_gateway.runtime import open_runtime, prepare_database
from servicekit.testing import MakeDatabase
from tests.request_gateway.conftest import user_record
from tests.request_gateway.live import LiveGateway, Member, live_gateway, live_settings, serve

PATH = "/api/v1/requests"
EVENTS = f"{PATH}/events"
WAITS_PER_MEMBER = 8  # GATEWAY_MAX_OPEN_WAITS_PER_USER's default
MEMBERS = 3
ATTEMPTS = 4


@pytest.fixture(scope="module")
def live(
    postgres_module_database: MakeDatabase,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveGateway]:
    data_dir = tmp_path_factory.mktemp("live-updates")
    yield from live_gateway(postgres_module_database, redis_server_url, data_dir)


@dataclass
class Event:
    """One Server-Sent Event as a client sees it."""

    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def request(self) -> dict[str, Any]:
        assert self.event == "request", self
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded


class EventReader:
    """Reads a stream's events one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, timeout_s: float = 20.0) -> Event:
        return await asyncio.wait_for(self._next(), timeout_s)

    async def _next(self) -> Event:
        event = Event()
        async for line in self.lines:
            if line == "":
                return event
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                event.comments.append(value)
            elif name == "data" and event.comments:
                raise AssertionError(f"a comment came with data: {line!r}")
            elif name == "data":
                event.data = f"{event.data}\n{value}" if event.data else value
            elif name in ("event", "id"):
                setattr(event, name, value)
        raise EOFError("the stream ended")

    async def until_end(self) -> None:
        """Read on until the server ends the stream (EOFError)."""
        while True:
            await self.next()

    async def rest(self) -> list[Event]:
        """Every event until the server ends the stream (a timeout if it does not)."""
        seen = []
        with contextlib.suppress(EOFError):
            while True:
                seen.append(await self.next())
        return seen

    async def next_request(self) -> Event:
        """The next `request` event, past keep-alive comments."""
        while True:
            event = await self.next()
            if event.event is not None:
                return event


@contextlib.asynccontextmanager
async def stream(
    client: httpx.AsyncClient, live: LiveGateway, member: Member, **headers: str
) -> AsyncIterator[EventReader]:
    async with client.stream(
        "GET", f"{live.url}{EVENTS}", headers={**member.headers, **headers}
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        assert (await reader.next()).comments == ["ready"]
        yield reader


async def submit(client: httpx.AsyncClient, live: LiveGateway, member: Member) -> str:
    answer = await client.post(
        f"{live.url}{PATH}", json={"type": "echo", "payload": {"n": 1}}, headers=member.headers
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"{PATH}/{answer.json()['id']}"
    request_id: str = answer.json()["id"]
    return request_id


async def export(live: LiveGateway) -> None:
    """What the link worker does: move queued requests into an outbound batch."""
    async with open_runtime(live.settings, listen=False) as runtime:
        await runtime.link.export_once()


async def answer(live: LiveGateway, request_ids: list[str]) -> None:
    """The processor answers; the worker (this process) applies the responses."""
    live.processor.send(
        [
            Response(
                request_id=uuid.UUID(request_id),
                status="completed",
                result={"n": 1},
                error=None,
                finished_at=datetime.now(UTC),
                trace_id="t",
            )
            for request_id in request_ids
        ]
    )
    async with open_runtime(live.settings, listen=False) as runtime:
        report = await runtime.link.import_once()
    assert [batch.outcome for batch in report.batches] == ["applied"], report


def open_waits(metrics_dir: Path) -> dict[int, float]:
    """Each server process's `gateway_open_waits`, from its own metrics file."""
    held = {}
    for path in metrics_dir.glob("gauge_livesum_*.db"):
        families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        pid = int(path.stem.removeprefix("gauge_livesum_"))
        held[pid] = sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "gateway_open_waits"
        )
    return held


async def until_held(live: LiveGateway, count: int) -> dict[int, float]:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        held = await asyncio.to_thread(open_waits, live.settings.data_dir / "metrics")
        if sum(held.values()) >= count:
            return held
        assert asyncio.get_running_loop().time() < deadline, held
        await asyncio.sleep(0.05)


async def test_a_response_applied_by_the_worker_wakes_waiters_in_both_processes(
    live: LiveGateway,
) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=90) as client:
        # Which process takes a connection is the kernel's choice: try again with fresh
        # members until waits were held by both when the response came.
        for _ in range(ATTEMPTS):
            members = [await live.member() for _ in range(MEMBERS)]
            made = {member.id: await submit(client, live, member) for member in members}
            await export(live)
            waits = [
                asyncio.create_task(
                    client.get(
                        f"{live.url}{PATH}/{made[member.id]}",
                        params={"wait": 60},
                        headers=member.headers,
                    )
                )
                for member in members
                for _ in range(WAITS_PER_MEMBER)
            ]
            held = await until_held(live, len(waits))
            await answer(live, list(made.values()))
            answers = await asyncio.gather(*waits)
            assert {(one.status_code, one.json()["status"]) for one in answers} == {
                (200, "completed")
            }
            if len(held) == 2 and all(count > 0 for count in held.values()):
                return
    pytest.fail(f"one process held every wait: {held}")


async def test_the_event_stream_pushes_changes_and_resumes_after_a_reconnect(
    live: LiveGateway,
) -> None:
    member = await live.member()
    async with httpx.AsyncClient(timeout=30) as client:
        async with stream(client, live, member) as events:
            first = await submit(client, live, member)
            queued = await events.next_request()
            assert (queued.request()["id"], queued.request()["status"]) == (first, "queued")
            await export(live)
            exported = await events.next_request()
            assert (exported.request()["id"], exported.request()["status"]) == (first, "exported")
            last_seen = exported.id
        assert last_seen is not None
        # Away: a second request is made and the first is answered.
        second = await submit(client, live, member)
        await answer(live, [first])
        async with stream(client, live, member, **{"Last-Event-ID": last_seen}) as events:
            missed = [await events.next_request(), await events.next_request()]
        assert [(event.request()["id"], event.request()["status"]) for event in missed] == [
            (second, "queued"),
            (first, "completed"),
        ]
        numbers = [int(last_seen), *(int(event.id or 0) for event in missed)]
        assert numbers == sorted(set(numbers))
        assert missed[1].request()["response"] == {"n": 1}


async def test_a_first_connection_can_resume_with_the_query_parameter(live: LiveGateway) -> None:
    member = await live.member()
    async with httpx.AsyncClient(timeout=30) as client:
        made = await submit(client, live, member)
        async with client.stream(
            "GET", f"{live.url}{EVENTS}?last_event_id=0", headers=member.headers
        ) as response:
            events = EventReader(response)
            await events.next()  # ready
            event = await events.next_request()
    assert (event.request()["id"], event.id) == (made, "1")


@pytest.mark.parametrize("bad", ["abc", "-1", "1" * 19, "1.5"])
async def test_a_last_event_id_that_is_not_a_change_number_is_refused(
    live: LiveGateway, bad: str
) -> None:
    member = await live.member()
    async with httpx.AsyncClient(timeout=30) as client:
        refused = await client.get(
            f"{live.url}{EVENTS}", headers={**member.headers, "Last-Event-ID": bad}
        )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "validation_error"


async def test_streams_need_a_sign_in_and_are_bounded_per_user_in_each_process(
    live: LiveGateway,
) -> None:
    member = await live.member()
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        assert (await client.get(f"{live.url}{EVENTS}")).status_code == 401
        opened, refused = 0, []
        async with contextlib.AsyncExitStack() as streams:
            # Two processes hold at most 8 each: the 17th is refused wherever it lands.
            for _ in range(2 * WAITS_PER_MEMBER + 1):
                response = await streams.enter_async_context(
                    client.stream("GET", f"{live.url}{EVENTS}", headers=member.headers)
                )
                if response.status_code == 200:
                    opened += 1
                else:
                    refused.append((response.status_code, json.loads(await response.aread())))
    assert WAITS_PER_MEMBER <= opened <= 2 * WAITS_PER_MEMBER
    assert refused
    assert {(status, body["error"]["code"]) for status, body in refused} == {
        (429, "too_many_waits")
    }


async def test_a_deactivated_users_stream_ends(live: LiveGateway) -> None:
    member = await live.member()
    async with httpx.AsyncClient(timeout=30) as client:
        made = await submit(client, live, member)
        async with stream(client, live, member) as events:
            record = await user_record(member.username, user_id=member.id, active=False, version=2)
            live.processor.send([record])
            async with open_runtime(live.settings, listen=False) as runtime:
                await runtime.link.import_once()
            told = [event.request() for event in await events.rest() if event.event]
        # The lock-out cancels their queued request; the stream may end before telling.
        assert [(request["id"], request["status"]) for request in told] in (
            [],
            [(made, "cancelled")],
        )


def test_stopping_the_server_ends_open_streams_and_waits(
    postgres_database: MakeDatabase, redis_server_url: str, tmp_path: Path
) -> None:
    database_url = postgres_database()
    asyncio.run(prepare_database(database_url))
    settings = live_settings(tmp_path / "data", database_url, redis_server_url)
    with serve(settings, workers=2) as gateway:

        async def scenario() -> int:
            member = await gateway.member()
            async with httpx.AsyncClient(timeout=30) as client:
                made = await submit(client, gateway, member)
                async with stream(client, gateway, member) as events:
                    wait = asyncio.create_task(
                        client.get(f"{gateway.url}{PATH}/{made}?wait=60", headers=member.headers)
                    )
                    await until_held(gateway, 2)
                    stopped = asyncio.create_task(asyncio.to_thread(gateway.stop))
                    with pytest.raises(EOFError):
                        await events.until_end()
                    answered = await wait
                    assert (answered.status_code, answered.json()["status"]) == (200, "queued")
                return await stopped

        assert asyncio.run(scenario()) == 0, gateway.output()

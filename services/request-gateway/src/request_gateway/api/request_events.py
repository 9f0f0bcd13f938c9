"""`GET /api/v1/requests/events`: the caller's request changes as Server-Sent Events.

Each event is `event: request`, `id: <change number>`, `data: <the request as GET shows
it>`. A client that reconnects with `Last-Event-ID` (browsers send it themselves) gets
every request that changed since, in order, then the live changes; a request that changed
several times while it was away comes once, as it is now. Without one the stream starts
with the changes after it opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Request, get
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from request_gateway.api.context import change_feed_of, gateway_user, runtime_of
from request_gateway.changes import ChangeFeed
from request_gateway.domain import requests
from request_gateway.identity.cache import GatewayUser
from request_gateway.runtime import Runtime
from servicekit.errors import ApiError

CHUNK: Final = 100  # changes read per round trip while catching up
RETRY_MS: Final = 2000  # how soon an EventSource reconnects
# A change number: decimal, at most 18 digits (below 2^63), so it always fits a bigint.
EVENT_ID: Final = r"^[0-9]{1,18}$"

LastEventId = Annotated[
    str | None, HeaderParameter(name="Last-Event-ID", max_length=18, pattern=EVENT_ID)
]
LastEventIdQuery = Annotated[
    str | None, QueryParameter(name="last_event_id", max_length=18, pattern=EVENT_ID)
]

_encoder = msgspec.json.Encoder()
# Comment-only messages carry `data=None`: Litestar's default (`""`) would send an empty
# `data:` line, which an EventSource dispatches as a message.


class RequestEventsController(Controller):
    """The caller's own request changes, pushed as they are committed."""

    path = "/api/v1/requests"
    tags = ("requests",)

    @get("/events")
    async def events(
        self,
        request: Request[Any, Any, Any],
        last_event_id: LastEventId = None,
        after: LastEventIdQuery = None,
    ) -> ServerSentEvent:
        """Stream the caller's request changes; resume with `Last-Event-ID` (or the query
        parameter `last_event_id`, for a first connection that cannot set headers)."""
        return await event_stream(request, last_event_id if last_event_id is not None else after)


async def event_stream(request: Request[Any, Any, Any], resume: str | None) -> ServerSentEvent:
    """The signed-in caller's stream, after change number `resume` (or from now on), with
    the feed's bounds: this route's and the portal's (`request_gateway.web`, which signs
    the caller in with its session cookie, as a browser's EventSource sends no header)."""
    user = await gateway_user(request)
    feed = change_feed_of(request)
    await feed.wait_for_room(user.id)  # a clean 429/503 before the stream starts
    stream = _stream(runtime_of(request), feed, user, None if resume is None else int(resume))
    return ServerSentEvent(stream)


async def _stream(
    runtime: Runtime, feed: ChangeFeed, user: GatewayUser, after: int | None
) -> AsyncIterator[ServerSentEventMessage]:
    """The events of one connection, until it closes, the feed closes, its time is up or
    the user may no longer sign in."""
    try:
        watch = await feed.open(user.id)
    except ApiError as refused:  # others took the room since the check
        yield _error(refused)
        return
    settings = runtime.settings
    loop = asyncio.get_running_loop()
    ends = loop.time() + settings.event_stream_max_s
    with watch:
        if after is None:
            async with runtime.pool.acquire() as conn:
                after = await requests.latest_change(conn, user.id)
        yield ServerSentEventMessage(data=None, comment="ready", retry=RETRY_MS)
        while not feed.closing and await _still_allowed(runtime, user):
            watch.arm()  # before reading: a change committed after the read wakes us
            async with runtime.pool.acquire() as conn:
                changes = await requests.changes_since(conn, user.id, after, CHUNK)
            for change in changes:
                data = _encoder.encode(change.request).decode()
                yield ServerSentEventMessage(data=data, event="request", id=str(change.seq))
                after = change.seq
            if len(changes) == CHUNK:
                continue
            remaining = ends - loop.time()
            if remaining <= 0:
                return
            if not await watch.wait(min(settings.event_keepalive_s, remaining)):
                yield ServerSentEventMessage(data=None, comment="keep-alive")


async def _still_allowed(runtime: Runtime, user: GatewayUser) -> bool:
    """Whether the user is still active with the same sessions (a reset ends the stream)."""
    now = await runtime.identity.user(user.id)
    return now is not None and now.active and now.session_version == user.session_version


def _error(refused: ApiError) -> ServerSentEventMessage:
    body = {"code": refused.code, "message": refused.message}
    return ServerSentEventMessage(data=_encoder.encode(body).decode(), event="error")

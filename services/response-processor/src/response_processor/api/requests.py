"""`/api/v1/requests` (read) and `/api/v1/dead-letters` (list, retry): operators and admins."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from response_processor.api.context import actor_of, runtime_of
from response_processor.api.guards import READ
from response_processor.requests.lifecycle import reopen_dead_letter
from response_processor.requests.queue import enqueue_request
from response_processor.requests.reads import (
    DeadLetterPage,
    RequestOut,
    RequestPage,
    get_request,
    list_dead_letters,
    list_requests,
)
from response_processor.requests.status import RequestStatus
from servicekit.fields import BigIntPath
from servicekit.paging import Cursor

Limit = Annotated[int, QueryParameter(ge=1, le=500)]


class RequestsController(Controller):
    """Requests received from the gateway, and their outcomes."""

    path = "/api/v1/requests"
    tags = ("requests",)
    guards = [READ]  # noqa: RUF012 - Litestar's own attribute

    @get("/")
    async def list(
        self,
        request: Request[Any, Any, Any],
        status: FromQuery[RequestStatus | None] = None,
        user_id: FromQuery[uuid.UUID | None] = None,
        cursor: Cursor = None,
        limit: Limit = 100,
    ) -> RequestPage:
        """Newest first; pass `next_cursor` as `cursor` for the next page."""
        async with runtime_of(request).pool.acquire() as conn:
            return await list_requests(
                conn, status=status, user_id=user_id, cursor=cursor, limit=limit
            )

    @get("/{request_id:uuid}")
    async def read(
        self, request: Request[Any, Any, Any], request_id: FromPath[uuid.UUID]
    ) -> RequestOut:
        """One request."""
        async with runtime_of(request).pool.acquire() as conn:
            return await get_request(conn, request_id)


class DeadLettersController(Controller):
    """Requests that failed their last try; an operator may run them again."""

    path = "/api/v1/dead-letters"
    tags = ("dead letters",)
    guards = [READ]  # noqa: RUF012 - Litestar's own attribute

    @get("/")
    async def list(
        self,
        request: Request[Any, Any, Any],
        include_retried: FromQuery[bool] = False,
        cursor: Cursor = None,
        limit: Limit = 100,
    ) -> DeadLetterPage:
        """Open dead letters, oldest first (`include_retried` for all)."""
        async with runtime_of(request).pool.acquire() as conn:
            return await list_dead_letters(
                conn, open_only=not include_retried, cursor=cursor, limit=limit
            )

    @post("/{dead_letter_id:int}/retry", status_code=HTTP_202_ACCEPTED)
    async def retry(
        self, request: Request[Any, Any, Any], dead_letter_id: BigIntPath
    ) -> RequestOut:
        """Run the request again from its first try; its new outcome is sent as it comes."""
        runtime = runtime_of(request)
        async with runtime.pool.acquire() as conn:
            request_id = await reopen_dead_letter(conn, dead_letter_id, actor_of(request))
            await enqueue_request(runtime.arq, request_id)
            return await get_request(conn, request_id)

"""Dead letters: inspect the error and the request, retry one or many (operators and admins)."""

from __future__ import annotations

import uuid
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from response_processor.api.context import actor_of, runtime_of
from response_processor.api.guards import READ
from response_processor.errors import ProcessorErrorCode, not_found
from response_processor.requests.lifecycle import reopen_dead_letter
from response_processor.requests.queue import enqueue_request
from response_processor.requests.reads import (
    get_dead_letter,
    get_request,
    list_dead_letters,
)
from response_processor.web.render import render
from servicekit.errors import ApiError
from servicekit.fields import BigIntPath
from servicekit.paging import Cursor
from servicekit.web import flash, see_other

PAGE_SIZE: Final = 50
MAX_RETRIED_AT_ONCE: Final = 500


class DeadLetterPages(Controller):
    """``/console/dead-letters``."""

    path = "/dead-letters"
    guards = [READ]  # noqa: RUF012 - Litestar's own attribute

    @get("/")
    async def index(
        self,
        request: Request[Any, Any, Any],
        include_retried: FromQuery[bool] = False,
        cursor: Cursor = None,
    ) -> Template:
        """Open dead letters, oldest first (all with ``include_retried``)."""
        async with runtime_of(request).pool.acquire() as conn:
            page = await list_dead_letters(
                conn, open_only=not include_retried, cursor=cursor, limit=PAGE_SIZE
            )
        next_url = None
        if page.next_cursor is not None:
            query = {**({"include_retried": "true"} if include_retried else {})}
            query["cursor"] = page.next_cursor
            next_url = f"{request.url.path}?{urlencode(query)}"
        return render(
            request,
            "dead_letters.html",
            letters=page.items,
            include_retried=include_retried,
            next_url=next_url,
        )

    @get("/{dead_letter_id:int}")
    async def show(self, request: Request[Any, Any, Any], dead_letter_id: BigIntPath) -> Template:
        """One dead letter: its error, and the request it belongs to."""
        async with runtime_of(request).pool.acquire() as conn:
            letter = await _find(conn, dead_letter_id)
            detail = await get_request(conn, letter.request_id)
        return render(request, "dead_letter.html", letter=letter, detail=detail)

    @post("/retry")
    async def retry(self, request: Request[Any, Any, Any]) -> Redirect:
        """Retry the ticked dead letters (the API's retry, one by one)."""
        form = await request.form()
        ids = [int(raw) for raw in form.getall("id") if str(raw).isdigit()][:MAX_RETRIED_AT_ONCE]
        if not ids:
            flash(request, "Tick at least one dead letter to retry.", "error")
            return see_other(request.url.path.removesuffix("/retry"))
        retried, refused = [], []
        for dead_letter_id in ids:
            try:
                retried.append(await _retry(request, dead_letter_id))
            except ApiError as exc:
                refused.append(f"#{dead_letter_id}: {exc.message}")
        message = f"{len(retried)} dead letter(s) queued again."
        if refused:
            message += " Not retried: " + "; ".join(refused)
        flash(request, message, "error" if refused else "success")
        return see_other(request.url.path.removesuffix("/retry"))


async def _retry(request: Request[Any, Any, Any], dead_letter_id: int) -> uuid.UUID:
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn:
        request_id = await reopen_dead_letter(conn, dead_letter_id, actor_of(request))
    await enqueue_request(runtime.arq, request_id)
    return request_id


async def _find(conn: Any, dead_letter_id: int) -> Any:
    letter = await get_dead_letter(conn, dead_letter_id)
    if letter is None:
        raise not_found(ProcessorErrorCode.DEAD_LETTER_NOT_FOUND, "the dead letter")
    return letter

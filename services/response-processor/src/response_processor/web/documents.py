"""Documents: upload JSON lines (admins), list them and preview a search (operators too).

The upload goes through the API's `parse_documents` and `load_documents` (and is audited
the same way); the preview runs the `documents.search` handler itself.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

import msgspec
import structlog
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.params import QueryParameter
from litestar.response import Template

from authkit.identity import current_user
from response_processor.api.context import actor_of, runtime_of
from response_processor.api.documents import load_and_audit
from response_processor.api.guards import MANAGE, READ
from response_processor.domain.documents import list_documents, parse_documents
from response_processor.processing.handlers import search
from response_processor.processing.handlers.base import HandlerContext
from response_processor.web.render import render
from servicekit.errors import ApiError, validation_error
from servicekit.fields import NO_NUL

PAGE_SIZE: Final = 50
Query = Annotated[str | None, QueryParameter(max_length=500, pattern=NO_NUL)]


class DocumentPages(Controller):
    """``/console/documents``."""

    path = "/documents"

    @get("/", guards=[READ])
    async def index(self, request: Request[Any, Any, Any], q: Query = None) -> Template:
        """The first documents, the upload form, and a search preview for ``q``."""
        return await _page(request, q, {}, None)

    @post("/", guards=[MANAGE])
    async def upload(self, request: Request[Any, Any, Any]) -> Template:
        """Load a JSON-lines file (one ``{"id"?, "title", "body"}`` per line)."""
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return await _page(request, None, {"file": "Choose a JSON-lines file."}, None, 400)
        body = await upload.read()
        try:
            try:
                documents = parse_documents(body, json_lines=True)
            except msgspec.ValidationError as exc:
                raise validation_error(exc, source="file") from None
            except msgspec.DecodeError as exc:
                raise ApiError(400, "bad_request", f"the file is not JSON lines: {exc}") from None
            result = await load_and_audit(runtime_of(request), documents, actor_of(request))
        except ApiError as exc:
            detail = exc.details[0]["message"] if isinstance(exc.details, list) else exc.message
            return await _page(request, None, {"file": str(detail)}, None, exc.status_code)
        return await _page(request, None, {}, result)


async def _preview(request: Request[Any, Any, Any], q: str) -> search.SearchResult:
    """What a user's `documents.search` for ``q`` would answer: the handler itself runs."""
    user = current_user(request)
    context = HandlerContext(
        request_id=uuid.uuid4(),
        user_id=user.id,
        trace_id="console-preview",
        attempt=1,
        db=runtime_of(request).pool,
        log=structlog.get_logger("response_processor.console"),
    )
    return await search.run(search.SearchPayload(query=q), context)


async def _page(
    request: Request[Any, Any, Any],
    q: str | None,
    errors: dict[str, str],
    loaded: Any,
    status_code: int = 200,
) -> Template:
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn:
        documents = (await list_documents(conn, cursor=None, limit=PAGE_SIZE)).items
    preview = await _preview(request, q) if q else None
    return render(
        request,
        "documents.html",
        status_code,
        documents=documents,
        q=q or "",
        preview=preview,
        errors=errors,
        loaded=loaded,
    )

"""`/api/v1/documents`: the collection `documents.search` runs over."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from response_processor.api.context import actor_of, runtime_of
from response_processor.api.guards import MANAGE, READ
from response_processor.domain import audit
from response_processor.domain.documents import (
    DocumentIn,
    DocumentPage,
    LoadResult,
    delete_document,
    list_documents,
    load_documents,
    parse_documents,
)
from response_processor.errors import ProcessorErrorCode, not_found
from response_processor.runtime import Runtime
from servicekit.errors import ApiError, validation_error
from servicekit.paging import Cursor

JSON_LINES_TYPES: Final = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")


class DocumentsController(Controller):
    """Bulk load (a JSON array, or JSON lines), list, delete."""

    path = "/api/v1/documents"
    tags = ("documents",)

    @post("/", guards=[MANAGE])
    async def load(self, request: Request[Any, Any, Any]) -> LoadResult:
        """Load documents `{"id"?, "title", "body"}`: insert, or replace those with an id."""
        json_lines = request.content_type[0] in JSON_LINES_TYPES
        try:
            documents = parse_documents(await request.body(), json_lines=json_lines)
        except msgspec.ValidationError as exc:
            raise validation_error(exc) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from None
        return await load_and_audit(runtime_of(request), documents, actor_of(request))

    @get("/", guards=[READ])
    async def list(
        self,
        request: Request[Any, Any, Any],
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> DocumentPage:
        """Documents by id, without their bodies; pass `next_cursor` as `cursor` for more."""
        async with runtime_of(request).pool.acquire() as conn:
            return await list_documents(conn, cursor=cursor, limit=limit)

    @delete("/{document_id:uuid}", guards=[MANAGE], status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, request: Request[Any, Any, Any], document_id: FromPath[uuid.UUID]
    ) -> None:
        """Delete one document."""
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            if not await delete_document(conn, document_id):
                raise not_found(ProcessorErrorCode.DOCUMENT_NOT_FOUND, "the document")
            await audit.record(
                conn,
                actor_of(request),
                audit.Action.DOCUMENTS_DELETED,
                target=f"document:{document_id}",
            )


async def load_and_audit(
    runtime: Runtime, documents: Sequence[DocumentIn], actor: audit.Actor
) -> LoadResult:
    """Load documents and audit the load in one transaction (the API's and the console's)."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        try:
            result = await load_documents(conn, documents)
        except ValueError as exc:
            raise ApiError(400, str(ProcessorErrorCode.DUPLICATE_DOCUMENT_ID), str(exc)) from None
        await audit.record(
            conn,
            actor,
            audit.Action.DOCUMENTS_LOADED,
            details={"inserted": result.inserted, "updated": result.updated},
        )
    return result

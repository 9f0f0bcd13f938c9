"""The searchable document collection: bulk load, list, delete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final

import msgspec

from servicekit import paging
from servicekit.database import Connection
from servicekit.fields import Text

MAX_TITLE: Final = 500
MAX_BODY: Final = 1_000_000

UPSERT_SQL: Final = """
    INSERT INTO document (id, title, body)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
    ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body
    RETURNING (xmax = 0) AS inserted
"""


class DocumentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A document to load; without an id, one is made (with it, loading again replaces it)."""

    title: Annotated[Text, msgspec.Meta(min_length=1, max_length=MAX_TITLE)]
    body: Annotated[Text, msgspec.Meta(max_length=MAX_BODY)]
    id: uuid.UUID | None = None


class LoadResult(msgspec.Struct, frozen=True):
    """How a bulk load went."""

    inserted: int
    updated: int
    ids: list[uuid.UUID]


def parse_documents(body: bytes, *, json_lines: bool) -> list[DocumentIn]:
    """Decode a JSON array, or JSON lines (one document per line, blank lines skipped)."""
    if json_lines:
        decoder = msgspec.json.Decoder(DocumentIn)
        return [
            _decode_line(decoder, line, number)
            for number, line in enumerate(body.splitlines(), start=1)
            if line.strip()
        ]
    return msgspec.json.decode(body, type=list[DocumentIn])


def _decode_line(decoder: msgspec.json.Decoder[DocumentIn], line: bytes, number: int) -> DocumentIn:
    try:
        return decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise msgspec.ValidationError(f"line {number}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise msgspec.DecodeError(f"line {number}: {exc}") from None


async def load_documents(connection: Connection, documents: Sequence[DocumentIn]) -> LoadResult:
    """Insert or replace documents in one statement (thousands per call)."""
    ids = [document.id or uuid.uuid4() for document in documents]
    if len(set(ids)) != len(ids):
        raise ValueError("the same document id appears twice in one load")
    rows = await connection.fetch(
        UPSERT_SQL,
        ids,
        [document.title for document in documents],
        [document.body for document in documents],
    )
    inserted = sum(1 for row in rows if row["inserted"])
    return LoadResult(inserted=inserted, updated=len(rows) - inserted, ids=ids)


class DocumentSummary(msgspec.Struct, frozen=True):
    """A document in a listing: no body."""

    id: uuid.UUID
    title: str
    body_chars: int
    created_at: datetime


DocumentPage = paging.Page[DocumentSummary]
"""A page of documents, by id."""
DocumentCursor = tuple[uuid.UUID]
"""A listing's position: the id of the last document seen."""


async def list_documents(conn: Connection, *, cursor: str | None, limit: int) -> DocumentPage:
    """Documents by id, `limit` at a time."""
    (after,) = paging.decode_cursor(cursor, DocumentCursor) if cursor else (None,)
    rows = await conn.fetch(
        """SELECT id, title, length(body) AS body_chars, created_at FROM document
           WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2""",
        after,
        limit + 1,
    )
    return paging.page_of(rows, limit, lambda row: DocumentSummary(**row), lambda doc: (doc.id,))


async def delete_document(conn: Connection, document_id: uuid.UUID) -> bool:
    """Delete one document; False if there was none."""
    deleted = await conn.fetchval("DELETE FROM document WHERE id = $1 RETURNING true", document_id)
    return bool(deleted)

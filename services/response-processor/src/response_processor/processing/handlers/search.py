"""`documents.search`: full-text search over the document collection, ranked, with snippets."""

from __future__ import annotations

import uuid
from typing import Annotated, Final

import msgspec

from response_processor.processing.handlers.base import Handler, HandlerContext

# websearch_to_tsquery accepts what people type ("quoted phrases", -excluded, or) and
# never raises on odd input, unlike to_tsquery.
COUNT_SQL: Final = """
    SELECT count(*) FROM document
    WHERE search @@ websearch_to_tsquery('english', $1)
"""
# Snippets mark matches with « »: unambiguous in plain text, and never HTML.
PAGE_SQL: Final = """
    SELECT page.id, page.title, page.score,
           ts_headline('english', page.body, websearch_to_tsquery('english', $1),
                       'StartSel=«, StopSel=», MaxWords=30, MinWords=10, MaxFragments=2')
               AS snippet
    FROM (
        SELECT id, title, body, ts_rank_cd(search, websearch_to_tsquery('english', $1)) AS score
        FROM document
        WHERE search @@ websearch_to_tsquery('english', $1)
        ORDER BY score DESC, id
        LIMIT $2 OFFSET $3
    ) AS page
    ORDER BY page.score DESC, page.id
"""


class SearchPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a search request carries."""

    query: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0


class Hit(msgspec.Struct, frozen=True):
    """One matching document."""

    id: uuid.UUID
    title: str
    snippet: str
    score: float


class SearchResult(msgspec.Struct, frozen=True):
    """The page of hits and how many documents match in all."""

    total: int
    hits: list[Hit]


async def run(payload: SearchPayload, context: HandlerContext) -> SearchResult:
    """Rank matching documents (title words weigh more) and return one page with snippets."""
    async with context.db.acquire() as connection:
        total = await connection.fetchval(COUNT_SQL, payload.query)
        rows = await connection.fetch(PAGE_SQL, payload.query, payload.limit, payload.offset)
    hits = [Hit(row["id"], row["title"], row["snippet"], round(row["score"], 6)) for row in rows]
    return SearchResult(total=total, hits=hits)


handler = Handler(
    type="documents.search",
    run=run,
    payload_type=SearchPayload,
    description="Full-text search over the document collection: query, limit, offset.",
)

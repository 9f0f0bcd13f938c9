"""Keyset pagination behind opaque cursors: the one listing style of both services.

A listing orders its rows by a unique key (`(created_at, id)`, `(username,)`, `(id,)`),
reads `limit + 1` rows past the cursor's key and answers a `Page`: the first `limit`
items and a `next_cursor` naming the last one's key, or null on the last page. Because the
key is unique, rows that share a time (every request of one imported batch has the same
`received_at`) are never skipped at a page boundary, as "older than the last time" did.

A cursor is the key as a JSON array in unpadded URL-safe base64: opaque to clients, and
decoded back into the listing's key type (use `Time`, `servicekit.fields.BigInt` and
`Text` in it), so anything this API did not give is a 400 `invalid_cursor` and never
reaches the database.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Generic, TypeVar

import msgspec
from litestar.params import Parameter

from servicekit.error_codes import ErrorCode
from servicekit.errors import ApiError
from servicekit.fields import NO_NUL

__all__ = ["Cursor", "Page", "Time", "decode_cursor", "encode_cursor", "page_of"]

T = TypeVar("T")
R = TypeVar("R")

MAX_CURSOR_LENGTH: Final = 200
Cursor = Annotated[
    str | None,
    Parameter(
        max_length=MAX_CURSOR_LENGTH,
        pattern=NO_NUL,
        description="`next_cursor` of the previous page",
    ),
]
"""The `cursor` query parameter of every listing."""

Time = Annotated[datetime, msgspec.Meta(tz=True)]
"""A time in a cursor's key (always with its offset)."""


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One page of a listing; pass `next_cursor` as `cursor` for the next (null on the last)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(key: tuple[Any, ...]) -> str:
    """The opaque cursor naming `key` (the last item's position)."""
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def decode_cursor(cursor: str, key_type: Any) -> Any:
    """The key a cursor names, as `key_type` (a tuple type); 400 `invalid_cursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = msgspec.json.decode(raw, type=key_type)
        # In UTC here, so a time at the calendar's edge is refused now, not by the driver.
        return tuple(part.astimezone(UTC) if isinstance(part, datetime) else part for part in key)
    except (ValueError, OverflowError):  # binascii.Error and msgspec's errors are ValueErrors
        raise ApiError(
            400, ErrorCode.INVALID_CURSOR, "The cursor is not one this API gave."
        ) from None


def page_of(
    rows: Sequence[R],
    limit: int,
    item: Callable[[R], T],
    key: Callable[[T], tuple[Any, ...]],
) -> Page[T]:
    """The page of `rows` (read with `LIMIT limit + 1`): `limit` items and the next cursor."""
    items = [item(row) for row in rows[:limit]]
    more = len(rows) > limit and bool(items)
    return Page(items, encode_cursor(key(items[-1])) if more else None)

"""Bounded input types: what PostgreSQL can store, refused at the edge with a 400.

PostgreSQL's `bigint` ends at 2**63 - 1 and its `text` cannot hold U+0000; an input beyond
either used to reach the database and come back as a 500. Two families, because Litestar
applies the constraints of `Parameter` to path, query and header values but ignores a
`msgspec.Meta` there, while bodies are decoded by msgspec and use `Meta`:

- bodies: `Text`, `BigInt` (nest them in `Annotated[Text, msgspec.Meta(max_length=...)]`:
  msgspec merges the constraints);
- parameters: `TextPath`, `TextQuery`, `BigIntPath`, `BigIntQuery` (and `NO_NUL`,
  `INT64_MAX` to build others with `Parameter(pattern=NO_NUL, ...)`);
- datetimes: `storable_datetime` refuses one PostgreSQL's `timestamptz` cannot hold (its
  year beyond 9999 once in UTC), which no type can say.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
from litestar.params import Parameter

from servicekit.errors import validation_error

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "NO_NUL",
    "BigInt",
    "BigIntPath",
    "BigIntQuery",
    "Text",
    "TextPath",
    "TextQuery",
    "storable_datetime",
]

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
NO_NUL: Final = r"^[^\x00]*$"
"""A pattern matching any text without U+0000."""

Text = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
BigInt = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]

TextPath = Annotated[str, Parameter(pattern=NO_NUL)]
TextQuery = Annotated[str | None, Parameter(pattern=NO_NUL)]
BigIntPath = Annotated[int, Parameter(ge=INT64_MIN, le=INT64_MAX)]
BigIntQuery = Annotated[int | None, Parameter(ge=INT64_MIN, le=INT64_MAX)]


def storable_datetime(value: datetime | None, field: str) -> datetime | None:
    """`value` when PostgreSQL can store it; else a 400 naming `field` (no 500 from asyncpg)."""
    if value is None:
        return None
    try:
        value.astimezone(UTC)
    except OverflowError:
        problem = f"A date in UTC between years 1 and 9999 is expected - at `$.{field}`"
        raise validation_error(msgspec.ValidationError(problem), source="query") from None
    return value

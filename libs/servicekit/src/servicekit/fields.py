"""Bounded input types: what PostgreSQL can store, refused at the edge with a 400.

PostgreSQL's `bigint` ends at 2**63 - 1 and its `text` cannot hold U+0000; an input beyond
either used to reach the database and come back as a 500. Two families, because Litestar
applies the constraints of `Parameter` to path, query and header values but ignores a
`msgspec.Meta` there, while bodies are decoded by msgspec and use `Meta`:

- bodies: `Text`, `BigInt` (nest them in `Annotated[Text, msgspec.Meta(max_length=...)]`:
  msgspec merges the constraints);
- parameters: `TextParam`, `BigIntParam`, `RowIdParam` (and `NO_NUL`, `INT64_MAX` to build
  others with `Parameter(pattern=NO_NUL, ...)`).
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from litestar.params import Parameter

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "NO_NUL",
    "BigInt",
    "BigIntParam",
    "RowIdParam",
    "Text",
    "TextParam",
]

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
NO_NUL: Final = r"^[^\x00]*$"
"""A pattern matching any text without U+0000."""

Text = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
BigInt = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]

TextParam = Annotated[str, Parameter(pattern=NO_NUL)]
BigIntParam = Annotated[int, Parameter(ge=INT64_MIN, le=INT64_MAX)]
RowIdParam = Annotated[int, Parameter(ge=1, le=INT64_MAX)]
"""A `bigserial` id in a path or query."""

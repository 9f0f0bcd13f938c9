"""The handler interface: what a request type's code receives and returns.

An operator adds a request type by publishing a `Handler` under the entry-point group
`airlock.handlers` (see docs/handlers.md); the built-ins are written the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What a handler may use besides its payload."""

    request_id: uuid.UUID
    user_id: uuid.UUID
    trace_id: str
    attempt: int  # 1 for the first try
    db: asyncpg.Pool  # the processor's database, for handlers that read it
    log: structlog.stdlib.BoundLogger


HandlerFunction = Callable[[Any, HandlerContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Handler:
    """One request type: validate the payload into `payload_type`, then run `run` on it.

    `run` returns the JSON-serialisable result sent back to the user. It raises
    `HandlerError` for a failure that trying again cannot fix (bad input, not found); any
    other exception is retried with backoff, up to the configured number of tries.
    """

    type: str
    run: HandlerFunction
    payload_type: Any = dict  # a msgspec Struct (or any msgspec type) for the payload
    timeout_s: float | None = None  # default: the processor's job timeout
    description: str = ""


class HandlerError(Exception):
    """A permanent failure: the request fails at once with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

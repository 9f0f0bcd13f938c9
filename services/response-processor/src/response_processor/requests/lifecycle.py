"""A request's way through the processor, as database transitions: started, finished
(answered), and reopened from its dead letter by an operator.

Every final outcome is written together with the response record for the gateway, in one
transaction, and only if the request is not final yet: however often a job runs (a worker
killed mid-run is run again), a request is answered exactly once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from airlink.outbox import enqueue
from airlink.records import RequestErrorCode, Response, ResponseError, ResponseStatus
from response_processor.domain import audit
from response_processor.errors import ProcessorErrorCode, conflict, not_found
from response_processor.requests.status import FINAL, UNFINISHED_SQL, RequestStatus
from servicekit.database import Connection

LOAD_SQL: Final = """
    SELECT r.id, r.user_id, r.type, r.payload, r.status, r.attempts, r.trace_id,
           r.cancel_requested, u.active AS user_active,
           p.allowed_request_types, p.max_payload_bytes
    FROM request r
    LEFT JOIN app_user u ON u.id = r.user_id
    LEFT JOIN profile_type p ON p.name = u.profile_type
    WHERE r.id = $1
"""
START_SQL: Final = f"""
    UPDATE request
    SET status = $2, attempts = attempts + 1, started_at = coalesce(started_at, now())
    WHERE id = $1 AND status IN {UNFINISHED_SQL}
    RETURNING attempts
"""  # noqa: S608 - the statuses are our own constants
FINISH_SQL: Final = f"""
    UPDATE request
    SET status = $2, result = $3::jsonb, error_code = $4, error_message = $5, finished_at = $6
    WHERE id = $1 AND status IN {UNFINISHED_SQL}
    RETURNING trace_id, attempts
"""  # noqa: S608
REOPEN_SQL: Final = """
    UPDATE request SET status = $2, attempts = 0, result = NULL,
        error_code = NULL, error_message = NULL, started_at = NULL, finished_at = NULL
    WHERE id = $1
"""
DEAD_LETTER_SQL: Final = """
    INSERT INTO dead_letter (request, error_code, error_message, attempts)
    VALUES ($1, $2, $3, $4)
"""

Refusal = tuple[RequestErrorCode, str]  # (error code, message)


@dataclass(frozen=True, slots=True)
class RequestToRun:
    """A request as a job sees it, with what decides whether it may run."""

    id: uuid.UUID
    user_id: uuid.UUID
    type: str
    payload: Any
    status: RequestStatus
    attempts: int
    trace_id: str
    cancel_requested: bool
    user_active: bool | None  # None: no such user
    allowed_request_types: list[str] | None
    max_payload_bytes: int | None

    @property
    def is_final(self) -> bool:
        """Whether an outcome was recorded already."""
        return self.status in FINAL

    def refusal(self, payload_bytes: int) -> Refusal | None:
        """Why this request must be answered with an error instead of run, if it must."""
        if self.user_active is None:
            return RequestErrorCode.USER_UNKNOWN, "the user does not exist on the response network"
        if not self.user_active:
            return RequestErrorCode.USER_INACTIVE, "the user is deactivated"
        if self.type not in (self.allowed_request_types or []):
            return (
                RequestErrorCode.TYPE_NOT_ALLOWED,
                f"the user's profile does not allow {self.type!r}",
            )
        if self.max_payload_bytes is not None and payload_bytes > self.max_payload_bytes:
            return (
                RequestErrorCode.PAYLOAD_TOO_LARGE,
                f"the payload exceeds {self.max_payload_bytes} bytes",
            )
        return None


async def load_request(connection: Connection, request_id: uuid.UUID) -> RequestToRun | None:
    """The request with its user's and profile's facts, in one query."""
    row = await connection.fetchrow(LOAD_SQL, request_id)
    if row is None:
        return None
    values = dict(row)
    values["payload"] = msgspec.json.decode(values["payload"])
    return RequestToRun(**values)


async def start(connection: Connection, request_id: uuid.UUID) -> int | None:
    """Mark the request as processing; its attempt number, or None if it is final already."""
    processing: RequestStatus = "processing"
    attempts: int | None = await connection.fetchval(START_SQL, request_id, processing)
    return attempts


async def finish(
    connection: Connection,
    request_id: uuid.UUID,
    status: ResponseStatus,
    *,
    result: Any = None,
    error: ResponseError | None = None,
    dead_letter: bool = False,
) -> bool:
    """Record the final outcome and queue its response, once; False if it was final already."""
    finished_at = datetime.now(UTC)
    async with connection.transaction():
        row = await connection.fetchrow(
            FINISH_SQL,
            request_id,
            status,
            None if result is None else msgspec.json.encode(result).decode(),
            error.code if error else None,
            error.message if error else None,
            finished_at,
        )
        if row is None:
            return False
        if dead_letter and error is not None:
            await connection.execute(
                DEAD_LETTER_SQL, request_id, error.code, error.message, row["attempts"]
            )
        response = Response(
            request_id=request_id,
            status=status,
            result=result,
            error=error,
            finished_at=finished_at,
            trace_id=row["trace_id"],
        )
        await enqueue(connection, [response])
    return True


async def reopen_dead_letter(
    conn: Connection, dead_letter_id: int, actor: audit.Actor
) -> uuid.UUID:
    """Mark the dead letter retried and its request received again; return the request id.

    The caller queues the job after commit. The request's final answer already went to the
    gateway: the new outcome follows as a later response.
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT request, retried_at FROM dead_letter WHERE id = $1 FOR UPDATE",
            dead_letter_id,
        )
        if row is None:
            raise not_found(ProcessorErrorCode.DEAD_LETTER_NOT_FOUND, "the dead letter")
        if row["retried_at"] is not None:
            raise conflict(ProcessorErrorCode.DEAD_LETTER_ALREADY_RETRIED, "already retried")
        request_id: uuid.UUID = row["request"]
        await conn.execute(
            "UPDATE dead_letter SET retried_at = now(), retried_by = $2 WHERE id = $1",
            dead_letter_id,
            actor.id,
        )
        received: RequestStatus = "received"
        await conn.execute(REOPEN_SQL, request_id, received)
        await audit.record(
            conn, actor, audit.Action.DEAD_LETTER_RETRIED, target=f"request:{request_id}"
        )
    return request_id

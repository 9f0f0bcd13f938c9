"""The arq job that runs one request through its handler, with timeouts and retries."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import structlog
from arq import Retry

from airlink.records import RequestErrorCode, ResponseError
from response_processor import metrics
from response_processor.processing.handlers.base import Handler, HandlerContext, HandlerError
from response_processor.requests.lifecycle import RequestToRun, finish, load_request, start
from servicekit.database import Connection

log = structlog.get_logger("response_processor.jobs")


@dataclass(frozen=True, slots=True)
class JobSettings:
    """How jobs run: per-type timeouts, retries and backoff."""

    default_timeout_s: float
    timeouts: Mapping[str, float]
    max_tries: int
    backoff_s: float

    def timeout_for(self, handler: Handler) -> float:
        """The time one try of this handler may take."""
        return self.timeouts.get(handler.type) or handler.timeout_s or self.default_timeout_s

    def backoff(self, attempt: int) -> float:
        """Seconds before try `attempt + 1`: doubles each time."""
        return float(self.backoff_s * 2 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class JobResources:
    """What every job needs, built once per worker process."""

    pool: asyncpg.Pool[Any]
    handlers: Mapping[str, Handler]
    settings: JobSettings


async def process_request(ctx: dict[str, Any], request_id: str) -> str:
    """arq entry point: run the request once more, or answer it; returns the outcome."""
    resources: JobResources = ctx["resources"]
    started = time.perf_counter()
    outcome = await run_request(resources, uuid.UUID(request_id))
    metrics.JOBS.labels(outcome).inc()
    metrics.JOB_SECONDS.labels(outcome).observe(time.perf_counter() - started)
    return outcome


async def run_request(resources: JobResources, request_id: uuid.UUID) -> str:
    """Decide, run and record; raise arq's Retry for a transient failure with tries left."""
    async with resources.pool.acquire() as connection:
        request = await load_request(connection, request_id)
        if request is None:
            log.warning("job_for_unknown_request", request_id=str(request_id))
            return "unknown"
        bound = log.bind(request_id=str(request_id), trace_id=request.trace_id, type=request.type)
        if request.is_final:
            return "already_final"
        early = await _answer_without_running(connection, request, resources)
        if early is not None:
            bound.info("request_answered_without_running", outcome=early)
            return early
        attempt = await start(connection, request_id)
    if attempt is None:
        return "already_final"
    handler = resources.handlers[request.type]
    return await _run_handler(resources, request, handler, attempt, bound)


async def _answer_without_running(
    connection: Connection, request: RequestToRun, resources: JobResources
) -> str | None:
    if request.cancel_requested:
        await finish(connection, request.id, "cancelled")
        return "cancelled"
    payload_bytes = len(msgspec.json.encode(request.payload))
    refusal = request.refusal(payload_bytes)
    if refusal is None and request.type not in resources.handlers:
        refusal = (RequestErrorCode.UNKNOWN_TYPE, f"no handler for request type {request.type!r}")
    if refusal is not None:
        code, message = refusal
        await finish(connection, request.id, "rejected", error=ResponseError(code, message))
        return "rejected"
    return None


async def _run_handler(
    resources: JobResources,
    request: RequestToRun,
    handler: Handler,
    attempt: int,
    bound: structlog.stdlib.BoundLogger,
) -> str:
    settings = resources.settings
    context = HandlerContext(
        request.id, request.user_id, request.trace_id, attempt, resources.pool, bound
    )
    try:
        payload = msgspec.convert(request.payload, handler.payload_type)
        async with asyncio.timeout(settings.timeout_for(handler)):
            result = msgspec.to_builtins(await handler.run(payload, context))
    except msgspec.ValidationError as exc:
        return await _fail(
            resources, request, ResponseError(RequestErrorCode.INVALID_PAYLOAD, str(exc)), bound
        )
    except HandlerError as exc:
        return await _fail(resources, request, ResponseError(exc.code, exc.message), bound)
    except TimeoutError:
        error = ResponseError(
            RequestErrorCode.HANDLER_TIMEOUT, f"no result within {settings.timeout_for(handler)} s"
        )
        return await _transient(resources, request, attempt, error, bound)
    except Exception as exc:
        bound.warning("handler_error", attempt=attempt, error=f"{type(exc).__name__}: {exc}")
        error = ResponseError(
            RequestErrorCode.HANDLER_FAILED, f"the handler failed: {type(exc).__name__}"
        )
        return await _transient(resources, request, attempt, error, bound)
    async with resources.pool.acquire() as connection:
        await finish(connection, request.id, "completed", result=result)
    bound.info("request_completed", attempt=attempt)
    return "completed"


async def _fail(
    resources: JobResources,
    request: RequestToRun,
    error: ResponseError,
    bound: structlog.stdlib.BoundLogger,
) -> str:
    async with resources.pool.acquire() as connection:
        await finish(connection, request.id, "failed", error=error)
    bound.info("request_failed", code=error.code)
    return "failed"


async def _transient(
    resources: JobResources,
    request: RequestToRun,
    attempt: int,
    error: ResponseError,
    bound: structlog.stdlib.BoundLogger,
) -> str:
    settings = resources.settings
    if attempt < settings.max_tries:
        delay = settings.backoff(attempt)
        bound.info("request_retry", attempt=attempt, code=error.code, retry_in_s=delay)
        metrics.RETRIES.inc()
        raise Retry(defer=delay)
    async with resources.pool.acquire() as connection:
        await finish(connection, request.id, "failed", error=error, dead_letter=True)
    metrics.DEAD_LETTERS.inc()
    bound.warning("request_dead_lettered", attempts=attempt, code=error.code)
    return "dead_lettered"

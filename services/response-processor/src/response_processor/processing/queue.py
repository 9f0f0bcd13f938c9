"""Putting requests in the arq queue, idempotently: the job id is the request id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from arq import ArqRedis

from response_processor.processing.jobs import JOB_NAME


async def enqueue_request(arq: ArqRedis, request_id: uuid.UUID) -> bool:
    """Queue the request's job unless it is queued or running already; True if queued now."""
    job = await arq.enqueue_job(JOB_NAME, str(request_id), _job_id=str(request_id))
    return job is not None


async def enqueue_requests(arq: ArqRedis, request_ids: Iterable[uuid.UUID]) -> int:
    """Queue many; return how many were not queued already."""
    queued = 0
    for request_id in request_ids:
        queued += await enqueue_request(arq, request_id)
    return queued

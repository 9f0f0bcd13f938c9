"""Putting requests in the arq queue, idempotently: the job id is the request id.

arq's `enqueue_job` costs three Redis round trips per job (WATCH, EXISTS, MULTI/EXEC): an
import of 100,000 requests would spend a minute queueing. `enqueue_requests` writes the same
Redis entries arq would (its job key, serialised by arq's own `serialize_job`, and the queue
entry) for many jobs in one Lua call, with arq's rule intact: a job whose key or result
exists is left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Final

from arq import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

JOB_NAME: Final = "process_request"
CHUNK: Final = 2_000  # jobs per Lua call: big enough to amortise, small enough not to stall Redis

# KEYS[1] is the queue; ARGV holds the enqueue time, the expiry, then (job id, job) pairs.
_ENQUEUE_MANY: Final = """
local queued = 0
for i = 3, #ARGV, 2 do
    local id = ARGV[i]
    if redis.call('exists', KEYS[2] .. id, KEYS[3] .. id) == 0 then
        redis.call('psetex', KEYS[2] .. id, ARGV[2], ARGV[i + 1])
        redis.call('zadd', KEYS[1], ARGV[1], id)
        queued = queued + 1
    end
end
return queued
"""


async def enqueue_request(arq: ArqRedis, request_id: uuid.UUID) -> bool:
    """Queue the request's job unless it is queued or running already; True if queued now."""
    job = await arq.enqueue_job(JOB_NAME, str(request_id), _job_id=str(request_id))
    return job is not None


async def enqueue_requests(arq: ArqRedis, request_ids: Iterable[uuid.UUID]) -> int:
    """Queue many jobs, a chunk per Redis call; return how many were not queued already."""
    script = arq.register_script(_ENQUEUE_MANY)
    keys = [arq.default_queue_name, job_key_prefix, result_key_prefix]
    queued = 0
    for chunk in _chunks(request_ids):
        now = timestamp_ms()
        args: list[str | bytes | int] = [now, arq.expires_extra_ms]
        for request_id in chunk:
            job_id = str(request_id)
            args += [
                job_id,
                serialize_job(JOB_NAME, (job_id,), {}, None, now, serializer=arq.job_serializer),
            ]
        queued += int(await script(keys=keys, args=args))
    return queued


def _chunks(ids: Iterable[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    iterator = iter(ids)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk

"""The real arq worker: jobs from the queue, a Redis loss healed by reconciliation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from response_processor.requests.reconcile import reconcile
from response_processor.runtime import Runtime, open_runtime
from response_processor.settings import ProcessorSettings
from response_processor.worker import build_worker
from tests.response_processor.linkside import FakeGateway, request
from tests.response_processor.test_processing import make_user, responses, status_of


@pytest.fixture
def gateway(settings: ProcessorSettings) -> FakeGateway:
    return FakeGateway(settings)


@pytest.fixture
async def rt(settings: ProcessorSettings, gateway: FakeGateway) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as runtime:
        yield runtime


async def drain_queue(rt: Runtime) -> int:
    """Run the worker until the queue is empty; return how many jobs completed."""
    worker = build_worker(rt)
    worker.burst = True
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker.jobs_complete


async def test_queued_requests_are_run_by_the_worker(rt: Runtime, gateway: FakeGateway) -> None:
    user_id = await make_user(rt)
    echoes = [request(user_id, "echo", n=i) for i in range(20)]
    gateway.send(echoes)
    await rt.link.import_once()  # queues a job per new request once the import committed
    assert await rt.arq.zcard(rt.arq.default_queue_name) == 20
    assert await reconcile(rt.pool, rt.arq) == 0  # already queued: not queued twice
    assert await drain_queue(rt) == 20
    for echo in echoes:
        assert (await status_of(rt, echo.id))[0] == "completed"
        assert len(await responses(rt, echo.id)) == 1


async def test_requests_lost_with_redis_are_queued_again(rt: Runtime, gateway: FakeGateway) -> None:
    user_id = await make_user(rt)
    echoes = [request(user_id) for _ in range(5)]
    gateway.send(echoes)
    await rt.link.import_once()
    await rt.redis.flushdb()  # Redis lost everything: the queue is gone
    assert await reconcile(rt.pool, rt.arq) == 5
    assert await drain_queue(rt) == 5
    assert {(await status_of(rt, echo.id))[0] for echo in echoes} == {"completed"}


async def test_an_unknown_request_id_in_the_queue_is_harmless(rt: Runtime) -> None:
    await rt.arq.enqueue_job("process_request", str(uuid.uuid4()))
    assert await drain_queue(rt) == 1

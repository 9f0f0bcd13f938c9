"""Requests through the processor: import, run, retry, dead letters, cancels, refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from arq import ArqRedis, Retry
from arq.jobs import Job, JobStatus

from airlink import Link
from airlink.records import Response
from batchformat import generate_key_pair, load_signing_key
from response_processor.domain import audit
from response_processor.domain.documents import DocumentIn, load_documents
from response_processor.domain.snapshot import snapshot_if_due
from response_processor.domain.users import UserIn, UserPatch, create_user, update_user
from response_processor.link.service import ProcessorLink
from response_processor.processing.handlers.base import Handler, HandlerContext
from response_processor.processing.handlers.registry import load_registry
from response_processor.processing.jobs import JobResources, JobSettings, run_request
from response_processor.requests.lifecycle import reopen_dead_letter
from response_processor.requests.reads import list_requests
from response_processor.requests.reconcile import reconcile
from response_processor.runtime import Runtime, open_runtime
from response_processor.settings import ProcessorSettings
from tests.response_processor.conftest import USER_PASSWORD
from tests.response_processor.linkside import (
    FakeGateway,
    cancel,
    exported_records,
    request,
    sent_records,
)


@pytest.fixture
def gateway(settings: ProcessorSettings) -> FakeGateway:
    return FakeGateway(settings)


@pytest.fixture
async def rt(settings: ProcessorSettings, gateway: FakeGateway) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as runtime:
        yield runtime


async def failing(payload: Any, context: HandlerContext) -> Any:
    raise RuntimeError("the backend is down")


@pytest.fixture
def resources(rt: Runtime) -> JobResources:
    handlers = {**load_registry(), "flaky": Handler(type="flaky", run=failing)}
    return JobResources(rt.pool, handlers, JobSettings(5.0, {}, max_tries=3, backoff_s=0.01))


async def make_user(rt: Runtime, *, types: list[str] | None = None) -> uuid.UUID:
    async with rt.pool.acquire() as conn:
        if types is not None:
            await conn.execute(
                "UPDATE profile_type SET allowed_request_types = $1 WHERE name = 'standard'", types
            )
        user = await create_user(
            conn,
            UserIn(f"u{uuid.uuid4().hex[:8]}", USER_PASSWORD, ["user"], "standard"),
            audit.SYSTEM,
        )
    return user.id


async def status_of(rt: Runtime, request_id: uuid.UUID) -> tuple[str, Any, str | None]:
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, result, error_code FROM request WHERE id = $1", request_id
        )
    assert row is not None
    result = None if row["result"] is None else msgspec.json.decode(row["result"])
    return row["status"], result, row["error_code"]


async def responses(rt: Runtime, request_id: uuid.UUID) -> list[dict[str, Any]]:
    """The responses about one request that the processor sent, in order."""
    await rt.link.export_once()
    return [
        msgspec.to_builtins(record)
        for record in sent_records(rt.settings)
        if isinstance(record, Response) and record.request_id == request_id
    ]


async def test_an_echo_request_comes_back_completed_with_its_payload(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    user_id = await make_user(rt)
    echo = request(user_id, "echo", text="ping", n=[1, 2, 3])
    gateway.send([echo])
    report = await rt.link.import_once()
    assert [batch.outcome for batch in report.batches] == ["applied"]
    assert await run_request(resources, echo.id) == "completed"
    assert await status_of(rt, echo.id) == ("completed", {"text": "ping", "n": [1, 2, 3]}, None)
    (response,) = await responses(rt, echo.id)
    assert response["status"] == "completed"
    assert response["result"] == {"text": "ping", "n": [1, 2, 3]}
    assert response["trace_id"] == echo.trace_id


async def test_paging_through_requests_never_skips_the_rest_of_a_batch(
    rt: Runtime, gateway: FakeGateway
) -> None:
    user_id = await make_user(rt)
    batch = [request(user_id, n=n) for n in range(7)]
    gateway.send(batch)
    await rt.link.import_once()
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    async with rt.pool.acquire() as conn:
        while True:
            page = await list_requests(conn, status=None, user_id=user_id, cursor=cursor, limit=3)
            seen += [item.id for item in page.items]
            if (cursor := page.next_cursor) is None:
                break
        received = await conn.fetchval(
            "SELECT count(DISTINCT received_at) FROM request WHERE user_id = $1", user_id
        )
    assert received == 1  # one batch, one transaction: the same `received_at` for all
    assert sorted(seen) == sorted(r.id for r in batch)
    assert len(seen) == len(set(seen))


async def test_a_request_is_stored_and_run_once_even_if_its_batch_comes_twice(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    user_id = await make_user(rt)
    echo = request(user_id)
    first = gateway.send([echo])
    content = first.read_bytes()
    await rt.link.import_once()
    first.with_name("again").write_bytes(b"")  # unrelated noise in the inbox is ignored
    (gateway.inbox / first.name).write_bytes(content)  # the same batch, resent
    report = await rt.link.import_once()
    assert [batch.outcome for batch in report.batches] == ["duplicate"]
    assert await run_request(resources, echo.id) == "completed"
    assert await run_request(resources, echo.id) == "already_final"
    assert len(await responses(rt, echo.id)) == 1


async def test_failures_are_retried_then_dead_lettered_then_retried_by_an_operator(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    user_id = await make_user(rt, types=["echo", "flaky"])
    flaky = request(user_id, "flaky")
    gateway.send([flaky])
    await rt.link.import_once()
    for _ in range(2):
        with pytest.raises(Retry):
            await run_request(resources, flaky.id)
    assert await run_request(resources, flaky.id) == "dead_lettered"
    assert await status_of(rt, flaky.id) == ("failed", None, "handler_failed")
    (response,) = await responses(rt, flaky.id)
    assert response["error"]["code"] == "handler_failed"
    async with rt.pool.acquire() as conn:
        dead_letter_id = await conn.fetchval(
            "SELECT id FROM dead_letter WHERE request = $1", flaky.id
        )
        await reopen_dead_letter(conn, dead_letter_id, audit.SYSTEM)
    assert (await status_of(rt, flaky.id))[0] == "received"
    # The backend is back: the retried request completes and its new answer follows.
    resources.handlers["flaky"] = Handler(type="flaky", run=load_registry()["echo"].run)  # type: ignore[index]
    assert await run_request(resources, flaky.id) == "completed"
    assert [r["status"] for r in await responses(rt, flaky.id)] == ["failed", "completed"]


async def test_requests_the_user_may_not_make_are_answered_not_run(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    allowed = await make_user(rt, types=["echo"])
    stranger = request(uuid.uuid4())
    not_allowed = request(allowed, "documents.search", query="x")
    unknown_type = request(allowed, "no.such.type")
    inactive_user = await make_user(rt, types=["echo"])
    async with rt.pool.acquire() as conn:
        await update_user(conn, inactive_user, UserPatch(active=False), audit.SYSTEM)
    from_inactive = request(inactive_user)
    gateway.send([stranger, not_allowed, unknown_type, from_inactive])
    await rt.link.import_once()
    expected = {
        stranger.id: "user_unknown",
        not_allowed.id: "type_not_allowed",
        unknown_type.id: "type_not_allowed",
        from_inactive.id: "user_inactive",
    }
    for request_id, code in expected.items():
        assert await run_request(resources, request_id) == "rejected"
        assert await status_of(rt, request_id) == ("rejected", None, code)


async def test_an_invalid_payload_fails_without_retries(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    user_id = await make_user(rt)
    search = request(user_id, "documents.search", limit=5)  # no query
    gateway.send([search])
    await rt.link.import_once()
    assert await run_request(resources, search.id) == "failed"
    assert (await status_of(rt, search.id))[2] == "invalid_payload"


async def test_a_cancel_before_processing_is_honoured_even_if_it_arrives_first(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    user_id = await make_user(rt)
    early, late = request(user_id), request(user_id)
    gateway.send([early])
    await rt.link.import_once()
    gateway.send([cancel(early), cancel(late)])
    await rt.link.import_once()
    assert await status_of(rt, early.id) == ("cancelled", None, None)
    gateway.send([late])  # the cancel came first, in an earlier batch
    await rt.link.import_once()
    assert await run_request(resources, late.id) == "cancelled"
    assert [r["status"] for r in await responses(rt, early.id)] == ["cancelled"]


async def test_a_job_killed_mid_run_is_run_again_and_answered_once(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    user_id = await make_user(rt)
    echo = request(user_id)
    gateway.send([echo])
    await rt.link.import_once()
    async with rt.pool.acquire() as conn:  # a run that started and never finished
        await conn.execute(
            "UPDATE request SET status = 'processing', attempts = 1 WHERE id = $1", echo.id
        )
    assert await run_request(resources, echo.id) == "completed"
    assert await run_request(resources, echo.id) == "already_final"
    assert len(await responses(rt, echo.id)) == 1


async def test_search_ranks_the_right_document_first(
    rt: Runtime, gateway: FakeGateway, resources: JobResources
) -> None:
    corpus = [
        DocumentIn("Quarterly revenue report", "Revenue grew in the third quarter across regions."),
        DocumentIn("Office plants", "Watering schedule for the ficus and the cactus."),
        DocumentIn("Travel policy", "Revenue from travel is not reported quarterly."),
        DocumentIn("Cafeteria menu", "Soup of the day and a quarter of a pie."),
    ]
    async with rt.pool.acquire() as conn:
        loaded = await load_documents(conn, corpus)
    user_id = await make_user(rt)
    search = request(user_id, "documents.search", query="quarterly revenue", limit=2)
    gateway.send([search])
    await rt.link.import_once()
    assert await run_request(resources, search.id) == "completed"
    _, result, _ = await status_of(rt, search.id)
    assert result["total"] == 2
    assert [hit["id"] for hit in result["hits"]] == [str(loaded.ids[0]), str(loaded.ids[2])]
    assert "«" in result["hits"][0]["snippet"]
    assert result["hits"][0]["score"] > result["hits"][1]["score"]


async def test_a_corrupted_batch_is_quarantined_and_nothing_of_it_applied(
    rt: Runtime, gateway: FakeGateway
) -> None:
    user_id = await make_user(rt)
    path = gateway.send([request(user_id), request(user_id)])
    path.write_bytes(path.read_bytes().replace(b'"world"', b'"WORLD"', 1))
    report = await rt.link.import_once()
    assert [(batch.outcome, batch.reason) for batch in report.batches] == [
        ("quarantined", "digest_mismatch")
    ]
    async with rt.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM request") == 0
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'batch_quarantined'"
        )
    assert audited == 1
    assert (rt.settings.inbox_path / "quarantine" / path.name).exists()


async def test_a_batch_imported_while_redis_is_down_is_audited_and_its_jobs_queued_later(
    rt: Runtime, gateway: FakeGateway, settings: ProcessorSettings
) -> None:
    user_id = await make_user(rt)
    sent = request(user_id)
    gateway.send([sent])
    # Nothing listens on this socket: queueing the jobs after the commit fails.
    down = ArqRedis(unix_socket_path=str(settings.data_dir / "gone.sock"))
    link = Link(
        rt.pool,
        settings.link_settings(),
        ProcessorLink(down),
        signing_key=rt.signing_key,
        peer_keys=rt.peer_keys,
    )
    try:
        [batch] = (await link.import_once()).batches
    finally:
        link.close()
        await down.aclose()
    assert batch.outcome == "applied"
    async with rt.pool.acquire() as conn:
        audited = await conn.fetchval(
            "SELECT outcome FROM audit_log WHERE action = 'batch_imported' AND target = $1",
            batch.name.file_name,
        )
    assert audited == "applied"
    job = Job(str(sent.id), rt.arq)
    assert await job.status() is JobStatus.not_found
    assert await reconcile(rt.pool, rt.arq) == 1
    assert await job.status() is JobStatus.queued


async def test_a_batch_signed_by_an_unknown_key_is_quarantined(
    rt: Runtime, gateway: FakeGateway, settings: ProcessorSettings
) -> None:
    private, _ = generate_key_pair("request-net-forger", settings.data_dir / "forger")
    gateway.key = load_signing_key(private)
    gateway.send([request(uuid.uuid4())])
    report = await rt.link.import_once()
    assert [(batch.outcome, batch.reason) for batch in report.batches] == [
        ("quarantined", "unknown_key")
    ]


async def test_the_user_snapshot_names_everyone_and_waits_its_interval(
    rt: Runtime, settings: ProcessorSettings
) -> None:
    user_id = await make_user(rt)
    assert await snapshot_if_due(rt.pool, timedelta(hours=1)) is True
    assert await snapshot_if_due(rt.pool, timedelta(hours=1)) is False
    assert await snapshot_if_due(rt.pool, timedelta(seconds=0)) is True
    snapshots = await exported_records(settings, "user_snapshot")
    assert len(snapshots) == 2
    assert str(user_id) in snapshots[0]["user_ids"]
    assert {"standard", "restricted"} <= set(snapshots[0]["profile_types"])


async def test_the_snapshot_cadence_is_scheduler_state_not_the_audit_log(rt: Runtime) -> None:
    assert await snapshot_if_due(rt.pool, timedelta(hours=1)) is True
    async with rt.pool.acquire() as conn:
        last = await conn.fetchval(
            "SELECT last_run_at FROM scheduler_state WHERE task = 'users_snapshot'"
        )
        assert last is not None
        # An hour back in the scheduler's own row: due again, whatever the audit log says.
        await conn.execute(
            "UPDATE scheduler_state SET last_run_at = last_run_at - interval '1 hour'"
        )
    assert await snapshot_if_due(rt.pool, timedelta(hours=1)) is True
    assert await snapshot_if_due(rt.pool, timedelta(hours=1)) is False

"""The gateway's side of the link: export, acks, responses, cancels, expiry, bad batches."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from airlink.records import Ack, Cancel, Request, RequestErrorCode, Response, ResponseError
from request_gateway.domain import requests
from request_gateway.runtime import Runtime
from request_gateway.settings import GatewaySettings
from request_gateway.worker import expire_due
from servicekit import paging
from tests.request_gateway.conftest import (
    Client,
    FakeProcessor,
    MakeMember,
    Sync,
    sent_batches,
    sent_records,
)


async def _submit(client: Client, member: Any, payload: Any = None) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/requests", json={"type": "echo", "payload": payload or {"n": 1}},
        headers=member.headers,
    )  # fmt: skip
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def _read(client: Client, member: Any, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.get(f"/api/v1/requests/{request_id}", headers=member.headers)
    ).json()
    return body


def _response(request_id: str, status: str = "completed", **fields: Any) -> Response:
    return Response(
        request_id=uuid.UUID(request_id),
        status=status,  # type: ignore[arg-type]
        result=fields.get("result"),
        error=fields.get("error"),
        finished_at=fields.get("finished_at", datetime.now(UTC)),
        trace_id="t",
    )


async def test_a_request_travels_out_and_its_response_comes_back(
    client: Client, make_member: MakeMember, link_runtime: Runtime, sync: Sync,
    settings: GatewaySettings,
) -> None:  # fmt: skip
    member = await make_member()
    made = await _submit(client, member, {"hello": "world"})
    await link_runtime.link.export_once()
    [request] = sent_records(settings, Request)
    assert (str(request.id), request.user_id, request.payload) == (
        made["id"], member.id, {"hello": "world"},
    )  # fmt: skip
    assert (await _read(client, member, made["id"]))["status"] == "exported"

    header = next(header for header, records in sent_batches(settings) if request in records)
    await sync([Ack(batch_id=header.batch_id, seq=header.seq)])
    assert (await _read(client, member, made["id"]))["status"] == "delivered"

    await sync([_response(made["id"], result={"hello": "world"})])
    done = await _read(client, member, made["id"])
    assert (done["status"], done["response"], done["error"]) == (
        "completed", {"hello": "world"}, None,
    )  # fmt: skip


async def test_a_failure_comes_back_with_its_error(
    client: Client, make_member: MakeMember, link_runtime: Runtime, sync: Sync
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    await link_runtime.link.export_once()
    error = ResponseError(code="handler_error", message="it broke")
    await sync([_response(made["id"], "failed", error=error)])
    done = await _read(client, member, made["id"])
    assert done["status"] == "failed"
    assert done["error"] == {"code": "handler_error", "message": "it broke"}


async def test_a_later_outcome_replaces_an_earlier_one_but_not_the_reverse(
    client: Client, make_member: MakeMember, link_runtime: Runtime, sync: Sync
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    await link_runtime.link.export_once()
    now = datetime.now(UTC)
    error = ResponseError(code="handler_error", message="first try")
    await sync([_response(made["id"], "failed", error=error, finished_at=now)])
    later = now + timedelta(minutes=5)
    await sync([_response(made["id"], result={"ok": True}, finished_at=later)])
    await sync([_response(made["id"], "failed", error=error, finished_at=now)])
    assert (await _read(client, member, made["id"]))["status"] == "completed"


async def test_responses_for_unknown_or_cancelled_requests_change_nothing(
    client: Client, make_member: MakeMember, sync: Sync, db: Any
) -> None:
    member = await make_member()
    made = await _submit(client, member)
    await client.delete(f"/api/v1/requests/{made['id']}", headers=member.headers)
    await sync([_response(made["id"]), _response(str(uuid.uuid4()))])
    assert (await _read(client, member, made["id"]))["status"] == "cancelled"
    assert await db.fetchval("SELECT count(*) FROM request") == 1


async def test_a_cancel_after_export_is_forwarded_and_the_answer_tells(
    client: Client, make_member: MakeMember, link_runtime: Runtime, sync: Sync,
    settings: GatewaySettings,
) -> None:  # fmt: skip
    member = await make_member()
    made = await _submit(client, member)
    await link_runtime.link.export_once()
    answer = await client.delete(f"/api/v1/requests/{made['id']}", headers=member.headers)
    assert answer.status_code == 202
    assert answer.json()["cancel_requested"] is True
    await link_runtime.link.export_once()
    [cancel] = sent_records(settings, Cancel)
    assert (str(cancel.request_id), cancel.user_id) == (made["id"], member.id)
    await sync([_response(made["id"], "cancelled")])
    assert (await _read(client, member, made["id"]))["status"] == "cancelled"


async def test_requests_of_a_deactivated_user_are_never_exported(
    client: Client, make_member: MakeMember, link_runtime: Runtime, sync: Sync,
    settings: GatewaySettings,
) -> None:  # fmt: skip
    member = await make_member()
    await _submit(client, member)
    await sync([msgspec.structs.replace(member.record, active=False, version=2)])
    await link_runtime.link.export_once()
    assert sent_records(settings, Request) == []


async def test_unanswered_requests_expire_after_the_ttl(
    client: Client, make_member: MakeMember, link_runtime: Runtime, db: Any,
    settings: GatewaySettings,
) -> None:  # fmt: skip
    member = await make_member()
    queued = await _submit(client, member, {"n": 1})
    sent = await _submit(client, member, {"n": 2})
    fresh = await _submit(client, member, {"n": 3})
    await db.execute(
        "UPDATE request SET created_at = now() - interval '25 hours' WHERE id = $1",
        uuid.UUID(sent["id"]),
    )
    await link_runtime.link.export_once()
    await db.execute(
        "UPDATE request SET created_at = now() - interval '25 hours' WHERE id = ANY($1)",
        [uuid.UUID(queued["id"])],
    )
    await db.execute("UPDATE request SET status = 'queued' WHERE id = $1", uuid.UUID(queued["id"]))
    await expire_due(link_runtime)
    statuses = {
        str(row["id"]): row["status"] for row in await db.fetch("SELECT id, status FROM request")
    }
    assert statuses == {queued["id"]: "expired", sent["id"]: "expired", fresh["id"]: "exported"}
    await link_runtime.link.export_once()
    assert [str(c.request_id) for c in sent_records(settings, Cancel)] == [
        queued["id"],
        sent["id"],
    ][1:] or [str(c.request_id) for c in sent_records(settings, Cancel)] == [
        sent["id"],
        queued["id"],
    ]
    assert await db.fetchval("SELECT pending FROM user_quota") == 1


async def test_a_forged_batch_is_quarantined_and_changes_nothing(
    client: Client, make_member: MakeMember, link_runtime: Runtime, settings: GatewaySettings,
    processor: FakeProcessor, db: Any,
) -> None:  # fmt: skip
    member = await make_member()
    path = processor.send([msgspec.structs.replace(member.record, version=9)])
    signed = path.read_bytes()
    tampered = signed.replace(b'"roles":["user"]', b'"roles":["admin"]')
    assert tampered != signed
    path.write_bytes(tampered)
    report = await link_runtime.link.import_once()
    assert [batch.outcome for batch in report.batches] == ["quarantined"]
    assert (settings.inbox_path / "quarantine" / path.name).exists()
    assert list(await db.fetchval("SELECT roles FROM app_user WHERE id = $1", member.id)) == [
        "user"
    ]


async def test_a_replayed_batch_changes_nothing(
    client: Client, make_member: MakeMember, link_runtime: Runtime, sync: Sync,
    processor: FakeProcessor, settings: GatewaySettings,
) -> None:  # fmt: skip
    member = await make_member()
    made = await _submit(client, member)
    await link_runtime.link.export_once()
    later = datetime.now(UTC) + timedelta(minutes=5)
    await sync([_response(made["id"], result={"v": 1}, finished_at=later)])
    archived = sorted((settings.inbox_path / "archive").glob("*.jsonl"))[-1]
    (settings.inbox_path / archived.name).write_bytes(archived.read_bytes())
    report = await link_runtime.link.import_once()
    assert [batch.outcome for batch in report.batches] == ["duplicate"]
    assert (await _read(client, member, made["id"]))["response"] == {"v": 1}


async def test_operators_can_export_now_and_list_batches(
    client: Client, make_member: MakeMember, settings: GatewaySettings
) -> None:
    operator = await make_member(roles=["operator"])
    await _submit(client, operator)
    exported = await client.post("/api/v1/admin/export", headers=operator.headers)
    assert exported.status_code == 200, exported.text
    assert exported.json()["batches"] >= 1
    assert len(sent_records(settings, Request)) == 1
    batches = await client.get("/api/v1/admin/batches", headers=operator.headers)
    assert batches.status_code == 200
    assert len(batches.json()["outbound"]) >= 1
    user = await make_member()
    assert (await client.post("/api/v1/admin/export", headers=user.headers)).status_code == 403


async def test_a_batch_cursor_the_api_did_not_give_is_refused(
    client: Client, make_member: MakeMember
) -> None:
    operator = await make_member(roles=["operator"])
    past_any_seq = paging.encode_cursor(("processor", 2**63))
    for way in ("outbound", "inbound"):
        for cursor in (past_any_seq, "not-a-cursor"):
            response = await client.get(
                f"/api/v1/admin/batches/{way}", params={"cursor": cursor}, headers=operator.headers
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "invalid_cursor"


def test_the_codes_the_gateway_gives_requests_are_request_error_codes() -> None:
    statements = [value for name, value in vars(requests).items() if name.endswith("_SQL")]
    codes = set(re.findall(r"error_code = '([a-z_]+)'", " ".join(statements)))
    assert codes == {"cancelled", "account_inactive", "expired"}
    assert codes <= set(RequestErrorCode)


async def test_a_batch_and_the_users_it_locked_out_are_audited_in_its_import(
    make_member: MakeMember, sync: Sync, db: Any
) -> None:
    member = await make_member()
    report = await sync([msgspec.structs.replace(member.record, active=False, version=2)])
    [batch] = report.batches
    rows = await db.fetch(
        "SELECT action, target, outcome, details FROM audit_log "
        "WHERE action IN ('batch_imported', 'users_locked_out') ORDER BY id DESC LIMIT 2"
    )
    by_action = {row["action"]: row for row in rows}
    assert by_action["batch_imported"]["target"] == batch.name.file_name
    assert by_action["batch_imported"]["outcome"] == "applied"
    assert msgspec.json.decode(by_action["users_locked_out"]["details"]) == {
        "users": [str(member.id)]
    }

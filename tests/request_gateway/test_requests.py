"""Submitting, reading, listing and cancelling requests; limits of the profile type."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

from tests.request_gateway.conftest import Client, MakeMember, profile_type


async def _submit(
    client: Client, headers: dict[str, str], payload: Any = None, **extra: Any
) -> Any:
    return await client.post(
        "/api/v1/requests",
        json={"type": extra.pop("type", "echo"), "payload": payload or {"n": 1}},
        headers={**headers, **extra.pop("more_headers", {})},
    )


async def test_submit_answers_202_with_the_request(client: Client, make_member: MakeMember) -> None:
    member = await make_member()
    response = await _submit(client, member.headers, {"hello": "world"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) >= {
        "id", "type", "status", "payload", "response", "error", "created_at", "updated_at"
    }  # fmt: skip
    assert (body["status"], body["response"], body["error"]) == ("queued", None, None)
    assert "r=" in response.headers["ratelimit"]
    assert "q=" in response.headers["ratelimit-policy"]


async def test_bad_bodies_are_refused_with_validation_errors(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    for body in [{}, {"type": "echo"}, {"type": "", "payload": {}}, {"type": "echo", "payload": 3},
                 {"type": "echo", "payload": {}, "extra": 1}]:  # fmt: skip
        response = await client.post("/api/v1/requests", json=body, headers=member.headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"


async def test_a_payload_holding_nul_is_refused_and_its_escaped_text_is_kept(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    for payload in [{"text": "a\u0000b"}, {"key\u0000": 1}, {"deep": [{"x": "\\\u0000"}]}]:
        refused = await _submit(client, member.headers, payload)
        assert refused.status_code == 400, payload
        assert refused.json()["error"]["details"][0]["field"] == "payload"
    literal = {"text": "\\u0000 is how JSON writes NUL"}
    kept = await _submit(client, member.headers, literal)
    assert kept.status_code == 202, kept.text
    assert kept.json()["payload"] == literal


async def test_the_profile_decides_types_and_payload_size(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member(profile=profile_type("small", types=["echo"], max_payload_bytes=64))
    wrong_type = await _submit(client, member.headers, type="documents.search")
    assert wrong_type.status_code == 403
    assert wrong_type.json()["error"]["code"] == "request_type_not_allowed"
    too_big = await _submit(client, member.headers, {"blob": "x" * 100})
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "payload_too_large"


async def test_a_user_sees_only_their_own_requests(client: Client, make_member: MakeMember) -> None:
    alice = await make_member()
    bob = await make_member()
    mine = (await _submit(client, alice.headers)).json()
    assert (
        await client.get(f"/api/v1/requests/{mine['id']}", headers=bob.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/requests/{mine['id']}", headers=bob.headers)
    ).status_code == 404
    listed = await client.get("/api/v1/requests", headers=bob.headers)
    assert listed.json()["items"] == []
    admin_only = await client.get("/api/v1/admin/requests", headers=bob.headers)
    assert admin_only.status_code == 403


async def test_listing_pages_with_a_cursor_and_filters_by_status(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    made = [(await _submit(client, member.headers, {"n": n})).json()["id"] for n in range(5)]
    await client.delete(f"/api/v1/requests/{made[0]}", headers=member.headers)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/requests", params=params, headers=member.headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    cancelled = await client.get(
        "/api/v1/requests", params={"status": "cancelled"}, headers=member.headers
    )
    assert [item["id"] for item in cancelled.json()["items"]] == [made[0]]
    bad = await client.get(
        "/api/v1/requests", params={"cursor": "nonsense"}, headers=member.headers
    )
    assert bad.status_code == 400


async def test_a_cursor_naming_a_time_off_the_calendar_is_invalid(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    for at in ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]:
        cursor = base64.urlsafe_b64encode(f'["{at}", "{uuid.uuid4()}"]'.encode()).decode()
        response = await client.get(
            "/api/v1/requests", params={"cursor": cursor}, headers=member.headers
        )
        assert response.status_code == 400, at
        assert response.json()["error"]["code"] == "invalid_cursor"


async def test_an_idempotency_key_never_makes_a_second_request(
    client: Client, make_member: MakeMember, db: Any
) -> None:
    member = await make_member()
    key = {"Idempotency-Key": "order-42"}
    answers = await asyncio.gather(
        *(_submit(client, member.headers, {"n": 1}, more_headers=key) for _ in range(12))
    )
    assert sorted(answer.status_code for answer in answers) == [200] * 11 + [202]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert await db.fetchval("SELECT count(*) FROM request") == 1
    assert await db.fetchval("SELECT pending FROM user_quota") == 1
    replay = await _submit(client, member.headers, {"n": 1}, more_headers=key)
    assert replay.headers["idempotent-replayed"] == "true"
    other = await _submit(client, member.headers, {"n": 2}, more_headers=key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_retry_is_replayed_whatever_form_the_database_keeps_its_numbers_in(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    key = {"Idempotency-Key": "big-numbers"}
    # jsonb keeps the decimal value and prints it as -524474615751602100…0, which decodes to
    # an int that is not the float sent: still the same JSON number, so the same request.
    payload = {"x": -5.244746157516021e178, "y": 1e-7, "z": 2**70}
    first = await _submit(client, member.headers, payload, more_headers=key)
    assert first.status_code == 202, first.text
    retry = await _submit(client, member.headers, payload, more_headers=key)
    assert retry.status_code == 200, retry.text
    assert retry.json()["id"] == first.json()["id"]


async def test_the_same_key_of_two_users_makes_two_requests(
    client: Client, make_member: MakeMember
) -> None:
    alice = await make_member()
    bob = await make_member()
    key = {"Idempotency-Key": "shared"}
    first = await _submit(client, alice.headers, more_headers=key)
    second = await _submit(client, bob.headers, more_headers=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]


async def test_the_pending_limit_holds_under_concurrent_submits(
    client: Client, make_member: MakeMember, db: Any
) -> None:
    member = await make_member(profile=profile_type("few", max_pending=3))
    answers = await asyncio.gather(*(_submit(client, member.headers) for _ in range(10)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [202] * 3 + [409] * 7
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert refused.json()["error"]["code"] == "too_many_pending_requests"
    # Cancelling one frees its slot.
    first = next(answer for answer in answers if answer.status_code == 202)
    await client.delete(f"/api/v1/requests/{first.json()['id']}", headers=member.headers)
    assert (await _submit(client, member.headers)).status_code == 202
    assert await db.fetchval("SELECT pending FROM user_quota") == 3


async def test_the_rate_limit_refuses_with_retry_after_and_headers(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member(profile=profile_type("slow", rpm=1, burst=2))
    assert (await _submit(client, member.headers)).status_code == 202
    assert (await _submit(client, member.headers)).status_code == 202
    refused = await _submit(client, member.headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == '"burst";q=2;w=120'
    assert refused.headers["ratelimit"].startswith('"burst";r=0;')


async def test_cancelling_a_queued_request_is_immediate(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member()
    made = (await _submit(client, member.headers)).json()
    cancelled = await client.delete(f"/api/v1/requests/{made['id']}", headers=member.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await client.delete(f"/api/v1/requests/{made['id']}", headers=member.headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "request_finished"


async def test_operators_see_everyones_requests(client: Client, make_member: MakeMember) -> None:
    user = await make_member()
    operator = await make_member(roles=["operator"])
    made = (await _submit(client, user.headers)).json()
    listed = await client.get("/api/v1/admin/requests", headers=operator.headers)
    assert listed.status_code == 200
    assert made["id"] in [item["id"] for item in listed.json()["items"]]


async def test_an_idempotent_replay_is_answered_once_the_burst_is_spent_and_spends_nothing(
    client: Client, make_member: MakeMember
) -> None:
    member = await make_member(profile=profile_type("replays", rpm=1, burst=2))
    key = {"Idempotency-Key": "order-7"}
    first = await _submit(client, member.headers, {"n": 1}, more_headers=key)
    assert first.status_code == 202, first.text
    assert first.headers["ratelimit"].startswith('"burst";r=1;')
    for _ in range(3):  # replays cost nothing: the second token is still there afterwards
        replay = await _submit(client, member.headers, {"n": 1}, more_headers=key)
        assert replay.status_code == 200, replay.text
    second = await _submit(client, member.headers, {"n": 2})
    assert second.status_code == 202, second.text
    assert second.headers["ratelimit"].startswith('"burst";r=0;')
    assert (await _submit(client, member.headers, {"n": 3})).status_code == 429
    replay = await _submit(client, member.headers, {"n": 1}, more_headers=key)
    assert replay.status_code == 200, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    reused = await _submit(client, member.headers, {"n": 9}, more_headers=key)
    assert reused.json()["error"]["code"] == "idempotency_key_reused"

"""The whole system end to end, as `make demo` runs it: users made on the processor sign in
on the gateway, requests cross the "air gap" and come back, and the link survives forged,
corrupted, lost and replayed batches. One stack for the module (start-up is paid once);
every test has its own users, so they do not depend on each other's order."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from airlink.records import Request, Response
from airlink.settings import GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID
from batchformat import BatchName
from servicekit.testing import wait_until
from tests.e2e.batches import (
    UNTOUCHED,
    batches_mentioning,
    batches_with,
    corrupt,
    drop,
    forged_key,
    is_encrypted,
    make_batch,
    quarantined,
    side_key,
)
from tests.e2e.stack import (
    FINAL_TIMEOUT_S,
    RESEND_AFTER_S,
    SIDES,
    Side,
    Stack,
    running_stack,
)

pytestmark = pytest.mark.timeout(420)

PROFILE = "e2e"
SLOW_PROFILE = "e2e-slow"  # one request a minute, two at once
ECHO = frozenset({"completed"})


@dataclass(frozen=True)
class Account:
    """A user made on the processor for these tests."""

    id: uuid.UUID
    username: str
    password: str


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack("e2e") as stack:
        yield stack


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> dict[str, Account]:
    """A user per test that needs its own, all made at once and synced to the gateway."""
    stack.create_profile_type(PROFILE)
    stack.create_profile_type(SLOW_PROFILE, requests_per_minute=1, burst=2)
    profiles = {
        "newcomer": PROFILE,
        "requester": PROFILE,
        "leaver": PROFILE,
        "hasty": SLOW_PROFILE,
        "canceller": PROFILE,
        "retrier": PROFILE,
        "returner": PROFILE,
        "bystander": PROFILE,
    }
    suffix = secrets.token_hex(3)
    made = {}
    for role, profile in profiles.items():
        username = f"{role}-{suffix}"
        user_id, password = stack.create_user(username, profile)
        made[role] = Account(user_id, username, password)
    stack.wait_synced({account.id: 1 for account in made.values()}, [PROFILE, SLOW_PROFILE])
    return made


def signed_in(stack: Stack, account: Account) -> dict[str, str]:
    return stack.login(account.username, account.password)


def test_a_user_created_on_the_processor_signs_in_on_the_gateway_once_synced(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    newcomer = accounts["newcomer"]
    auth = signed_in(stack, newcomer)
    me = stack.http.get(f"{stack.run.gateway}/me", headers=auth)
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(newcomer.id)
    assert me.json()["profile_type"] == PROFILE
    assert me.json()["limits"]["requests_per_minute"] == 600


def test_echo_and_search_come_back_completed_with_their_results(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    auth = signed_in(stack, accounts["requester"])
    payload = {"hello": "across the air gap", "nested": {"n": [1, 2.5, None, True, "é"]}}
    echo_id = stack.submitted(auth, "echo", payload)
    search_id = stack.submitted(
        auth, "documents.search", {"query": "diode", "limit": 5, "offset": 0}
    )

    echo = stack.wait_status(auth, echo_id)
    assert (echo["status"], echo["response"], echo["error"]) == ("completed", payload, None)
    search = stack.wait_status(auth, search_id)
    assert search["status"] == "completed", search
    assert search["response"]["total"] >= 1
    (first, *_) = search["response"]["hits"]
    assert set(first) == {"id", "title", "snippet", "score"}
    assert first["title"] == "Data diodes"
    assert "«" in first["snippet"]

    on_processor = stack.processor_request(echo_id).json()
    assert (on_processor["status"], on_processor["attempts"]) == ("completed", 1)
    assert on_processor["response"] == payload


def test_a_handler_failure_comes_back_failed_with_its_error(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    auth = signed_in(stack, accounts["requester"])
    # The gateway takes any JSON object; the search handler's schema wants a query.
    request_id = stack.submitted(auth, "documents.search", {"query": "", "limit": 5})

    failed = stack.wait_status(auth, request_id)
    assert failed["status"] == "failed", failed
    assert failed["response"] is None
    assert failed["error"]["code"] == "invalid_payload"
    assert "query" in failed["error"]["message"]
    on_processor = stack.processor_request(request_id).json()
    assert (on_processor["status"], on_processor["attempts"]) == ("failed", 1)
    # Not worth retrying: no dead letter for an operator.
    dead = stack.query(
        "processor", "SELECT count(*) FROM dead_letter WHERE request = $1", request_id
    )
    assert dead[0][0] == 0


def test_a_deactivated_user_is_locked_out_on_the_gateway(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    leaver = accounts["leaver"]
    auth = signed_in(stack, leaver)
    created = stack.http.post(f"{stack.run.gateway}/api-keys", json={"name": "e2e"}, headers=auth)
    assert created.status_code == 201, created.text
    api_key = {"X-API-Key": created.json()["key"]}
    me = f"{stack.run.gateway}/me"
    assert stack.http.get(me, headers=api_key).status_code == 200

    user = stack.patch_user(leaver.id, {"active": False})
    stack.wait_synced({leaver.id: user["version"]})

    # Each server process forgets the user when the sync commits (LISTEN/NOTIFY).
    wait_until(
        lambda: stack.http.get(me, headers=auth).status_code in (401, 403),
        what="the access token refused",
        timeout_s=10,
    )
    assert stack.http.get(me, headers=api_key).status_code in (401, 403)
    assert stack.submit(auth, "echo", {"after": "deactivation"}).status_code in (401, 403)
    login = stack.http.post(
        f"{stack.run.gateway}/auth/login",
        json={"username": leaver.username, "password": leaver.password},
    )
    assert login.status_code in (401, 403), login.text


def test_rate_limits_answer_429_with_retry_after(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    auth = signed_in(stack, accounts["hasty"])
    accepted = [stack.submit(auth, "echo", {"n": n}) for n in range(2)]
    assert [response.status_code for response in accepted] == [202, 202]
    assert all("RateLimit" in response.headers for response in accepted)

    refused = stack.submit(auth, "echo", {"n": 3})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert ";q=2;" in refused.headers["RateLimit-Policy"]
    # Reads are not limited.
    listed = stack.http.get(f"{stack.run.gateway}/requests", headers=auth)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 2


def test_a_queued_request_is_cancelled_at_once_and_never_sent(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    auth = signed_in(stack, accounts["canceller"])
    # The gateway worker moves queued requests to the outbox every half second: frozen, it
    # leaves the request queued for as long as the test needs.
    with stack.paused("gateway-worker", idle_side="gateway"):
        request_id = stack.submitted(auth, "echo", {"cancel": "me"})
        cancelled = stack.http.delete(f"{stack.run.gateway}/requests/{request_id}", headers=auth)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"

    # A request submitted after it goes all the way across and back...
    later = stack.submitted(auth, "echo", {"after": "the cancel"})
    assert stack.wait_status(auth, later)["status"] == "completed"
    # ...the cancelled one never went.
    assert stack.request(auth, request_id)["status"] == "cancelled"
    assert stack.processor_request(request_id).status_code == 404
    # A finished request cannot be cancelled.
    too_late = stack.http.delete(f"{stack.run.gateway}/requests/{later}", headers=auth)
    assert too_late.status_code == 409, too_late.text
    assert too_late.json()["error"]["code"] == "request_finished"


def test_a_cancel_after_export_is_honoured_when_processing_has_not_started(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    auth = signed_in(stack, accounts["canceller"])
    # With the processor's worker frozen, the request crosses but is not imported: the
    # cancel that follows it is in the processor's inbox before anything runs.
    with stack.paused("processor-worker"):
        request_id = stack.submitted(auth, "echo", {"cancel": "in flight"})
        stack.wait_status(auth, request_id, frozenset({"exported"}))
        forwarded = stack.http.delete(f"{stack.run.gateway}/requests/{request_id}", headers=auth)
        assert forwarded.status_code == 202, forwarded.text
        assert forwarded.json()["cancel_requested"] is True
        assert forwarded.json()["status"] == "exported"
        again = stack.http.delete(f"{stack.run.gateway}/requests/{request_id}", headers=auth)
        assert again.status_code == 202, again.text
        inbox = stack.inbox("processor")
        wait_until(
            lambda: (
                batches_mentioning(inbox, str(request_id), '"kind":"request"')
                and batches_mentioning(inbox, str(request_id), '"kind":"cancel"')
            ),
            what="the request and its cancel in the processor's inbox",
            timeout_s=FINAL_TIMEOUT_S,
        )

    final = stack.wait_status(auth, request_id)
    assert final["status"] == "cancelled", final
    on_processor = stack.processor_request(request_id).json()
    assert (on_processor["status"], on_processor["attempts"]) == ("cancelled", 0)


def test_the_same_idempotency_key_makes_one_request_run_once(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    auth = signed_in(stack, accounts["retrier"])
    key = f"e2e-{uuid.uuid4()}"
    payload = {"once": True}

    def attempt(_: int) -> tuple[int, str, str | None]:
        response = stack.submit(auth, "echo", payload, idempotency_key=key)
        replayed = response.headers.get("Idempotent-Replayed")
        return response.status_code, response.json()["id"], replayed

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(attempt, range(4)))
    assert sorted(status for status, _, _ in answers) == [200, 200, 200, 202], answers
    assert len({request_id for _, request_id, _ in answers}) == 1
    assert all(replayed == "true" for status, _, replayed in answers if status == 200)
    request_id = uuid.UUID(answers[0][1])

    other = stack.submit(auth, "echo", {"once": False}, idempotency_key=key)
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"

    assert stack.wait_status(auth, request_id)["response"] == payload
    replay = stack.submit(auth, "echo", payload, idempotency_key=key)
    assert replay.status_code == 200
    assert (replay.json()["id"], replay.json()["status"]) == (str(request_id), "completed")
    rows = stack.query("gateway", "SELECT count(*) FROM request WHERE idempotency_key = $1", key)
    assert rows[0][0] == 1
    on_processor = stack.processor_request(request_id).json()
    assert (on_processor["status"], on_processor["attempts"]) == ("completed", 1)


def test_forged_and_corrupted_batches_are_quarantined_while_traffic_goes_on(
    stack: Stack, accounts: dict[str, Account], tmp_path: Path
) -> None:
    bystander = accounts["bystander"]
    auth = signed_in(stack, bystander)
    payload = {"real": "request"}
    request_id = stack.submitted(auth, "echo", payload)
    now = datetime.now(UTC)

    def smuggled_request() -> Request:
        return Request(
            id=uuid.uuid4(),
            user_id=bystander.id,
            type="echo",
            payload={"note": UNTOUCHED.decode()},
            created_at=now,
            trace_id="smuggled",
        )

    # A later outcome wins on the gateway: were these applied, they would be the answer.
    forged_answer = Response(
        request_id=request_id,
        status="completed",
        result={"note": UNTOUCHED.decode()},
        error=None,
        finished_at=now + timedelta(days=1),
        trace_id="smuggled",
    )
    to_processor = {"source": GATEWAY_NETWORK_ID, "destination": PROCESSOR_NETWORK_ID}
    to_gateway = {"source": PROCESSOR_NETWORK_ID, "destination": GATEWAY_NETWORK_ID}
    smuggled = [smuggled_request() for _ in range(3)]
    made: dict[Side, list[tuple[Path, str]]] = {
        "processor": [
            (make_batch(tmp_path, **to_processor, records=[smuggled[0]], key=forged_key()),
             "unknown_key"),
            (make_batch(tmp_path, **to_processor, records=[smuggled[1]],
                        key=forged_key(GATEWAY_NETWORK_ID)),
             "bad_signature"),
            (make_batch(tmp_path, **to_processor, records=[smuggled[2]],
                        key=side_key(stack.data_dir("gateway"), GATEWAY_NETWORK_ID)),
             "digest_mismatch"),
        ],
        "gateway": [
            (make_batch(tmp_path, **to_gateway, records=[forged_answer], key=forged_key()),
             "unknown_key"),
            (make_batch(tmp_path, **to_gateway, records=[forged_answer],
                        key=forged_key(PROCESSOR_NETWORK_ID)),
             "bad_signature"),
            (make_batch(tmp_path, **to_gateway, records=[forged_answer],
                        key=side_key(stack.data_dir("processor"), PROCESSOR_NETWORK_ID)),
             "digest_mismatch"),
        ],
    }  # fmt: skip
    for side, batches in made.items():
        corrupt(batches[-1][0])  # signed with the real key, changed on the way
        for path, _ in batches:
            drop(path, stack.inbox(side))

    for side, batches in made.items():
        for path, reason in batches:
            found = wait_until(
                partial(quarantined, stack.inbox(side), path.name),
                what=f"{path.name} quarantined by the {side}",
                timeout_s=FINAL_TIMEOUT_S,
            )
            assert found["code"] == reason, found
            assert not (stack.inbox(side) / path.name).exists()
        # Each side audits what it refused, and why (once the import pass is over).
        expected = sorted((path.name, reason) for path, reason in batches)
        wait_until(
            partial(audited, stack, side, expected),
            what=f"the {side}'s audit of the refusals",
            timeout_s=FINAL_TIMEOUT_S,
        )

    answered = stack.wait_status(auth, request_id)
    assert (answered["status"], answered["response"]) == ("completed", payload)
    for record in smuggled:
        assert stack.processor_request(record.id).status_code == 404
    # The link itself is unharmed: no gap was recorded on either side.
    for side in SIDES:
        rows = stack.query(side, "SELECT inbound_max_seq, inbound_contiguous_seq FROM link_peer")
        assert all(row["inbound_max_seq"] < 900_000_000 for row in rows), rows


def audited(stack: Stack, side: Side, expected: list[tuple[str, str]]) -> bool:
    """The side's audit log holds exactly these quarantines (file name, reason)."""
    rows = stack.query(
        side,
        "SELECT target, details->>'reason' AS reason FROM audit_log "
        "WHERE action = 'batch_quarantined' AND target = ANY($1)",
        [name for name, _ in expected],
    )
    return sorted((row["target"], row["reason"]) for row in rows) == expected


def test_a_batch_lost_in_transit_is_sent_again_and_the_request_completes(
    stack: Stack, accounts: dict[str, Account]
) -> None:
    auth = signed_in(stack, accounts["requester"])
    payload = {"lost": "in transit"}
    with stack.paused("transfer-agent"):
        request_id = stack.submitted(auth, "echo", payload)
        (lost,) = wait_until(
            lambda: batches_mentioning(stack.outbox("gateway"), str(request_id)),
            what="the request's batch in the gateway's outbox",
            timeout_s=FINAL_TIMEOUT_S,
        )
        lost.unlink()
        lost_at = time.monotonic()
    name = BatchName.parse(lost.name)
    assert name is not None

    answered = stack.wait_status(auth, request_id)
    assert (answered["status"], answered["response"]) == ("completed", payload)
    assert time.monotonic() - lost_at >= RESEND_AFTER_S - 1
    (batch,) = stack.query(
        "gateway",
        "SELECT publish_count, acknowledged_at FROM link_outbound_batch WHERE batch_id = $1",
        name.batch_id,
    )
    assert batch["publish_count"] >= 2
    assert batch["acknowledged_at"] is not None


def test_a_replayed_old_batch_changes_nothing(stack: Stack, accounts: dict[str, Account]) -> None:
    auth = signed_in(stack, accounts["requester"])
    payload = {"replayed": "later"}
    request_id = stack.submitted(auth, "echo", payload)
    assert stack.wait_status(auth, request_id)["status"] == "completed"
    leaver = accounts["returner"]
    user = stack.patch_user(leaver.id, {"active": False})
    stack.wait_synced({leaver.id: user["version"]})
    # The batches that carried the request each way, and the one that brought the user while
    # still active, as each side archived them once applied.
    archives = {side: stack.inbox(side) / "archive" for side in SIDES}
    carried: list[tuple[Side, Path]] = [
        ("processor", one(batches_mentioning(archives["processor"], str(request_id)))),
        ("gateway", one(batches_mentioning(archives["gateway"], str(request_id)))),
        ("gateway", one(batches_with(archives["gateway"], user_record(leaver.id, active=True)))),
    ]
    # Encryption is on by default: what crossed is ciphertext, the request id is not in it.
    for _, path in carried:
        assert is_encrypted(path)
        assert str(request_id).encode() not in path.read_bytes()

    def state() -> tuple[object, ...]:
        gateway = stack.query(
            "gateway",
            "SELECT status, result::text, finished_at, updated_at FROM request WHERE id = $1",
            request_id,
        )
        processor = stack.query(
            "processor",
            "SELECT status, attempts, finished_at FROM request WHERE id = $1",
            request_id,
        )
        responses = stack.query(
            "processor",
            "SELECT count(*) FROM link_outbox_item WHERE kind = 'response' "
            "AND record->>'request_id' = $1",
            str(request_id),
        )
        user = stack.query(
            "gateway",
            "SELECT active, version, session_version FROM app_user WHERE id = $1",
            leaver.id,
        )
        return tuple(gateway), tuple(processor), responses[0][0], tuple(user)

    def times_received(side: Side, path: Path) -> int:
        name = BatchName.parse(path.name)
        assert name is not None
        rows = stack.query(
            side, "SELECT times_received FROM link_inbound_batch WHERE batch_id = $1", name.batch_id
        )
        count: int = rows[0][0]
        return count

    def replay_taken(side: Side, path: Path, before: int) -> bool:
        seen = times_received(side, path) > before
        return seen and not (stack.inbox(side) / path.name).exists()

    before = state()
    assert before[2] == 1
    received = [times_received(side, path) for side, path in carried]
    for side, path in carried:
        drop(path, stack.inbox(side))
    for (side, path), count in zip(carried, received, strict=True):
        wait_until(
            partial(replay_taken, side, path, count),
            what=f"{path.name} taken by the {side}",
            timeout_s=FINAL_TIMEOUT_S,
        )
    assert state() == before
    refused = stack.http.post(
        f"{stack.run.gateway}/auth/login",
        json={"username": leaver.username, "password": leaver.password},
    )
    assert refused.status_code in (401, 403), refused.text


def one(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def user_record(user_id: uuid.UUID, *, active: bool) -> Callable[[dict[str, Any]], bool]:
    def matches(record: dict[str, Any]) -> bool:
        return (
            record.get("kind") == "user"
            and record.get("id") == str(user_id)
            and record.get("active") is active
        )

    return matches

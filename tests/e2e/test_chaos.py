"""Chaos: users keep submitting requests while the transfer agent, the workers (two on each
side) and both APIs are killed with SIGKILL at random moments and started again by the
supervisor. Once the chaos stops and the system settles, every request the gateway accepted
has exactly one final outcome on both sides, none was lost, none was run to two outcomes,
and the link has no gap and no unacknowledged batch left.

The victims and the pauses between kills come from a seeded generator: the seed is printed,
and `CHAOS_SEED=<seed>` replays the same choices (the timing of a shared machine does not
replay). `CHAOS_DURATION_S` sets how long the chaos lasts (default 45 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from servicekit.testing import wait_until
from tests.e2e.stack import SIDES, Stack, running_stack

pytestmark = pytest.mark.timeout(420)

SEED: Final = int(os.environ.get("CHAOS_SEED") or secrets.randbits(32))
CHAOS_S: Final = float(os.environ.get("CHAOS_DURATION_S") or 45)
VICTIMS: Final = (
    "transfer-agent",
    "gateway-worker",
    "gateway-worker-2",
    "processor-worker",
    "processor-worker-2",
    "gateway-api",
    "processor-api",
)
PROCESSOR_WORKERS: Final = frozenset({"processor-worker", "processor-worker-2"})
KILL_PAUSE_S: Final = (1.0, 4.0)
TWO_AT_ONCE: Final = 0.25  # the chance that a second process is killed with the first
USERS: Final = 3
SUBMIT_PAUSE_S: Final = (0.05, 0.4)
# How long one submit may keep failing (API restarting) before the test gives up.
SUBMIT_PATIENCE_S: Final = 90.0
SETTLE_TIMEOUT_S: Final = 150.0
WORKER_CONCURRENCY: Final = 10
PROFILE: Final = "chaos"
STACK_ENV: Final = {
    # A killed worker's unfinished requests are queued again by the next reconciliation, and
    # its running jobs rerun once arq's in-progress mark lapses (timeout + margin + 10 s).
    "PROCESSOR_RECONCILE_INTERVAL_S": "5",
    "PROCESSOR_JOB_TIMEOUT_S": "5",
    "PROCESSOR_WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack("chaos", workers=(2, 2), env=STACK_ENV) as stack:
        yield stack


@dataclass(frozen=True)
class Submission:
    """A request the gateway accepted (202, or 200 for a retry of the same key)."""

    user_id: uuid.UUID
    idempotency_key: str
    payload: dict[str, Any]


@dataclass
class Ledger:
    """What the users saw during the chaos."""

    accepted: dict[uuid.UUID, Submission] = field(default_factory=dict)
    retried: Counter[str] = field(default_factory=Counter)  # why a submit was tried again
    kills: Counter[str] = field(default_factory=Counter)


def test_every_accepted_request_is_answered_exactly_once_despite_kills(stack: Stack) -> None:
    print(f"\nchaos: CHAOS_SEED={SEED}, {CHAOS_S:.0f} s of kills")
    rng = random.Random(SEED)
    users = make_users(stack)
    ledger = Ledger()
    began = time.monotonic()
    asyncio.run(run_chaos(stack, users, rng, ledger))
    chaos_s = time.monotonic() - began
    print(
        f"chaos: {len(ledger.accepted)} requests accepted in {chaos_s:.0f} s; "
        f"kills {dict(ledger.kills)}; submits retried {dict(ledger.retried)}"
    )
    assert len(ledger.accepted) >= 20, "too few requests to tell anything"
    if CHAOS_S >= 30:  # a round of kills takes 7 pauses of 1 to 4 s
        assert set(ledger.kills) == set(VICTIMS), ledger.kills

    settled = settle(stack, ledger)
    print(f"chaos: settled {settled:.0f} s after the last kill")
    assert_gateway_answered_each_once(stack, users, ledger)
    assert_processor_ran_each_to_one_outcome(stack, users, ledger)
    assert_nothing_quarantined(stack)
    assert stack.run.process.poll() is None, "the supervisor itself must not have died"


def make_users(stack: Stack) -> dict[uuid.UUID, dict[str, str]]:
    """Users with limits the test never reaches, signed in on the gateway; auth by id."""
    stack.create_profile_type(
        PROFILE, requests_per_minute=60_000, burst=10_000, max_pending_requests=10_000
    )
    suffix = secrets.token_hex(3)
    made = {stack.create_user(f"chaos-{n}-{suffix}", PROFILE): n for n in range(USERS)}
    stack.wait_synced({user_id: 1 for user_id, _ in made}, [PROFILE])
    return {
        user_id: stack.login(f"chaos-{n}-{suffix}", password)
        for (user_id, password), n in made.items()
    }


async def run_chaos(
    stack: Stack,
    users: Mapping[uuid.UUID, dict[str, str]],
    rng: random.Random,
    ledger: Ledger,
) -> None:
    """Submitters and the killer, for CHAOS_S; then the submits in progress finish."""
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        submitters = [
            asyncio.create_task(
                submit_until_stopped(
                    client,
                    stack.run.gateway,
                    user_id,
                    auth,
                    random.Random(rng.random()),
                    stop,
                    ledger,
                )
            )
            for user_id, auth in users.items()
        ]
        killer = asyncio.create_task(kill_at_random(stack, rng, stop, ledger))
        await asyncio.sleep(CHAOS_S)
        stop.set()
        await killer
        await asyncio.gather(*submitters)


async def submit_until_stopped(
    client: httpx.AsyncClient,
    gateway: str,
    user_id: uuid.UUID,
    auth: Mapping[str, str],
    rng: random.Random,
    stop: asyncio.Event,
    ledger: Ledger,
) -> None:
    """One user's echo requests, one after another, each under its own idempotency key."""
    number = 0
    while not stop.is_set():
        number += 1
        payload = {"user": str(user_id), "n": number, "pad": "x" * rng.randrange(200)}
        submission = Submission(user_id, f"chaos-{user_id}-{number}", payload)
        request_id = await submit_until_accepted(client, gateway, auth, submission, ledger)
        ledger.accepted[request_id] = submission
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(*SUBMIT_PAUSE_S))


async def submit_until_accepted(
    client: httpx.AsyncClient,
    gateway: str,
    auth: Mapping[str, str],
    submission: Submission,
    ledger: Ledger,
) -> uuid.UUID:
    """Submit, retrying the same idempotency key until the gateway answers it: a request
    it stored before its answer was lost (the API killed mid-request) is not made twice."""
    headers = {**auth, "Idempotency-Key": submission.idempotency_key}
    body = {"type": "echo", "payload": submission.payload}
    deadline = time.monotonic() + SUBMIT_PATIENCE_S
    while True:
        try:
            response = await client.post(f"{gateway}/requests", json=body, headers=headers)
        except httpx.TransportError as exc:
            ledger.retried[type(exc).__name__] += 1
        else:
            if response.status_code in (200, 202):
                return uuid.UUID(response.json()["id"])
            if response.status_code < 500:
                raise AssertionError(f"submit refused: {response.status_code} {response.text}")
            ledger.retried[f"HTTP {response.status_code}"] += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"no submit accepted for {SUBMIT_PATIENCE_S:.0f} s")
        await asyncio.sleep(0.2)


async def kill_at_random(
    stack: Stack, rng: random.Random, stop: asyncio.Event, ledger: Ledger
) -> None:
    """SIGKILL the processes one after another, in a new random order each round, after
    random pauses; sometimes two at once. A victim still down from its last kill (the
    supervisor waits longer after each) is killed once it is back. Until stopped."""
    queue: list[str] = []
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(*KILL_PAUSE_S))
        if stop.is_set():
            return
        for _ in range(2 if rng.random() < TWO_AT_ONCE else 1):
            if not queue:
                queue = rng.sample(VICTIMS, len(VICTIMS))
            pid = stack.run.child_pids().get(queue[0])
            if pid is not None and is_child_of(stack, pid):
                os.kill(pid, signal.SIGKILL)
                ledger.kills[queue.pop(0)] += 1


def is_child_of(stack: Stack, pid: int) -> bool:
    """`pid` still runs one of this stack's processes (not a pid already recycled)."""
    folder = os.fsencode(str(stack.run.demo_dir))
    try:
        # The services have their folders in their environment, the agent its configuration
        # on its command line.
        mentions = folder in Path(f"/proc/{pid}/environ").read_bytes()
        mentions = mentions or folder in Path(f"/proc/{pid}/cmdline").read_bytes()
        return os.getpgid(pid) == pid and mentions
    except OSError:
        return False


def settle(stack: Stack, ledger: Ledger) -> float:
    """Until every accepted request is final on the gateway, and the link has no gap and no
    unacknowledged business batch either way; seconds it took."""
    began = time.monotonic()
    ids = list(ledger.accepted)

    def answered() -> bool:
        rows = stack.query(
            "gateway",
            "SELECT count(*) FROM request WHERE id = ANY($1) AND status IN "
            "('completed', 'failed', 'cancelled', 'expired')",
            ids,
        )
        return bool(rows[0][0] == len(ids))

    def link_settled() -> bool:
        for side in SIDES:
            peer = stack.query(
                side, "SELECT inbound_max_seq, inbound_contiguous_seq FROM link_peer"
            )
            open_batches = stack.query(
                side,
                "SELECT count(*) FROM link_outbound_batch "
                "WHERE acknowledged_at IS NULL AND business_count > 0",
            )
            if open_batches[0][0] or any(
                row["inbound_max_seq"] != row["inbound_contiguous_seq"] for row in peer
            ):
                return False
        return True

    wait_until(
        answered, what="every accepted request answered on the gateway", timeout_s=SETTLE_TIMEOUT_S
    )
    wait_until(link_settled, what="the link settled", timeout_s=SETTLE_TIMEOUT_S)
    return time.monotonic() - began


def assert_gateway_answered_each_once(
    stack: Stack, users: Mapping[uuid.UUID, dict[str, str]], ledger: Ledger
) -> None:
    rows = stack.query(
        "gateway",
        "SELECT id, user_id, idempotency_key, status, payload::text, result::text, error_code "
        "FROM request WHERE user_id = ANY($1)",
        list(users),
    )
    by_id = {row["id"]: row for row in rows}
    # Every submit was retried until answered: the gateway holds exactly the accepted ones.
    assert set(by_id) == set(ledger.accepted), "requests made but never acknowledged to a user"
    assert len({(row["user_id"], row["idempotency_key"]) for row in rows}) == len(rows)
    not_completed = [dict(row) for row in rows if row["status"] != "completed"]
    assert not not_completed, not_completed[:5]
    for request_id, submission in ledger.accepted.items():
        row = by_id[request_id]
        assert json.loads(row["result"]) == submission.payload, row
        assert row["idempotency_key"] == submission.idempotency_key


def assert_processor_ran_each_to_one_outcome(
    stack: Stack, users: Mapping[uuid.UUID, dict[str, str]], ledger: Ledger
) -> None:
    ids = list(ledger.accepted)
    rows = stack.query(
        "processor",
        "SELECT id, status, attempts, result::text FROM request WHERE user_id = ANY($1)",
        list(users),
    )
    assert sorted(row["id"] for row in rows) == sorted(ids), "lost or extra requests"
    assert {row["status"] for row in rows} == {"completed"}
    for row in rows:
        assert json.loads(row["result"]) == ledger.accepted[row["id"]].payload
    # One outcome each: exactly one response record was queued for the gateway per request.
    responses = stack.query(
        "processor",
        "SELECT (record->>'request_id')::uuid AS id, count(*) AS n, "
        "count(DISTINCT record->>'status') AS outcomes "
        "FROM link_outbox_item WHERE kind = 'response' AND (record->>'request_id')::uuid = ANY($1) "
        "GROUP BY 1",
        ids,
    )
    assert len(responses) == len(ids), "requests without a response"
    repeated = [dict(row) for row in responses if row["n"] != 1]
    assert not repeated, repeated[:5]
    dead = stack.query("processor", "SELECT count(*) FROM dead_letter WHERE request = ANY($1)", ids)
    assert dead[0][0] == 0
    # A job runs again only when its worker died under it (its attempt was counted, its
    # outcome was not): at most as many as the killed workers were running.
    rerun = [row for row in rows if row["attempts"] > 1]
    worker_kills = sum(ledger.kills[name] for name in PROCESSOR_WORKERS)
    print(f"chaos: {len(rerun)} requests started twice after {worker_kills} worker kills")
    assert all(row["attempts"] >= 1 for row in rows)
    assert len(rerun) <= worker_kills * WORKER_CONCURRENCY


def assert_nothing_quarantined(stack: Stack) -> None:
    """No kill may leave a half-written or half-copied batch where anyone would take it."""
    for side in SIDES:
        for folder in (stack.inbox(side) / "quarantine", stack.outbox(side) / "quarantine"):
            assert not folder.exists() or not any(folder.iterdir()), list(folder.iterdir())

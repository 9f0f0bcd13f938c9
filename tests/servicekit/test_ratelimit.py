"""The GCRA rate limiter: bursts, refill, headers, Redis failures, exactness across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import redis.asyncio
from prometheus_client import REGISTRY

from servicekit import ratelimit
from servicekit.ratelimit import (
    RateLimitDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RateLimitPolicy,
)
from tests.servicekit import ratelimit_worker
from tests.servicekit.log_capture import LogCapture

PREFIX = "test:ratelimit:"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the (flushed) test Redis."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def limiter(redis_client: redis.asyncio.Redis) -> RateLimiter:
    return RateLimiter(redis_client, key_prefix=PREFIX)


async def _hits(limiter: RateLimiter, subject: str, policy: RateLimitPolicy, count: int) -> None:
    for _ in range(count):
        assert (await limiter.hit(subject, policy)).allowed


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value("rate_limit_decisions_total", {"outcome": outcome})
    return value or 0.0


async def test_a_burst_passes_then_the_next_request_waits_one_interval(
    limiter: RateLimiter,
) -> None:
    policy = RateLimitPolicy(requests_per_minute=1, burst=5)
    remaining = [(await limiter.hit("alice", policy)).remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    refused = await limiter.hit("alice", policy)
    assert refused == RateLimitDecision(
        allowed=False, limit=5, remaining=0, reset_s=300, retry_after_s=60, policy=policy
    )


async def test_a_refused_request_is_not_counted(limiter: RateLimiter) -> None:
    policy = RateLimitPolicy(requests_per_minute=6000, burst=1)  # T = 10 ms
    await _hits(limiter, "alice", policy, 1)
    for _ in range(20):
        await limiter.hit("alice", policy)
    await asyncio.sleep(0.02)
    assert (await limiter.hit("alice", policy)).allowed


async def test_the_quota_refills_at_the_sustained_rate(limiter: RateLimiter) -> None:
    # T = 100 ms: short sleeps, yet far longer than the few round trips of one burst.
    policy = RateLimitPolicy(requests_per_minute=600, burst=3)
    await _hits(limiter, "alice", policy, 3)
    refused = await limiter.hit("alice", policy)
    assert (refused.allowed, refused.retry_after_s) == (False, 1)
    await asyncio.sleep(0.15)  # one interval: one request back
    assert (await limiter.hit("alice", policy)).allowed
    await asyncio.sleep(0.4)  # idle for longer than burst * T: the whole burst is back
    await _hits(limiter, "alice", policy, 3)
    assert not (await limiter.hit("alice", policy)).allowed


async def test_subjects_are_limited_apart(limiter: RateLimiter) -> None:
    policy = RateLimitPolicy(requests_per_minute=1, burst=2)
    await _hits(limiter, "alice", policy, 2)
    assert not (await limiter.hit("alice", policy)).allowed
    await _hits(limiter, "bob", policy, 2)


async def test_a_higher_burst_applies_at_once(limiter: RateLimiter) -> None:
    small = RateLimitPolicy(requests_per_minute=1, burst=2)
    await _hits(limiter, "alice", small, 2)
    assert not (await limiter.hit("alice", small)).allowed
    larger = RateLimitPolicy(requests_per_minute=1, burst=5)
    await _hits(limiter, "alice", larger, 3)
    decision = await limiter.hit("alice", larger)
    assert (decision.allowed, decision.limit) == (False, 5)


async def test_state_lives_under_the_prefix_and_expires_once_the_subject_is_idle(
    limiter: RateLimiter, redis_client: redis.asyncio.Redis
) -> None:
    await limiter.hit("user-42", RateLimitPolicy(requests_per_minute=1, burst=5))
    assert limiter.key("user-42") == "test:ratelimit:user-42"
    assert await redis_client.keys("*") == [b"test:ratelimit:user-42"]
    # One request of a burst of 5 at T = 60 s: full again (and forgotten) within 60 s.
    assert 59_000 < await redis_client.pttl("test:ratelimit:user-42") <= 60_000


async def test_headers_of_an_allowed_request(limiter: RateLimiter) -> None:
    decision = await limiter.hit("alice", RateLimitPolicy(requests_per_minute=1, burst=10))
    assert decision.headers() == {
        "RateLimit-Policy": '"burst";q=10;w=600',
        "RateLimit": '"burst";r=9;t=60',
    }


async def test_headers_of_a_refused_request_agree_with_retry_after(limiter: RateLimiter) -> None:
    policy = RateLimitPolicy(requests_per_minute=1, burst=10)
    await _hits(limiter, "alice", policy, 9)
    last = await limiter.hit("alice", policy)
    assert last.headers()["RateLimit"] == '"burst";r=0;t=600'
    refused = await limiter.hit("alice", policy)
    assert refused.headers() == {
        "RateLimit-Policy": '"burst";q=10;w=600',
        "RateLimit": '"burst";r=0;t=60',
        "Retry-After": "60",
    }


def test_the_policy_window_is_the_refill_time_rounded_up() -> None:
    def policy_header(requests_per_minute: int, burst: int) -> str:
        policy = RateLimitPolicy(requests_per_minute=requests_per_minute, burst=burst)
        decision = RateLimitDecision(
            allowed=True, limit=burst, remaining=0, reset_s=1, retry_after_s=0, policy=policy
        )
        return decision.headers()["RateLimit-Policy"]

    assert policy_header(60, 10) == '"burst";q=10;w=10'
    assert policy_header(7, 1) == '"burst";q=1;w=9'  # T = 8.57 s
    assert policy_header(6000, 10) == '"burst";q=10;w=1'  # 0.1 s, never 0


def test_policies_need_a_burst_and_a_rate_that_is_not_negative() -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimitPolicy(requests_per_minute=10, burst=0)
    with pytest.raises(ValueError, match="negative"):
        RateLimitPolicy(requests_per_minute=-1, burst=1)
    with pytest.raises(msgspec.ValidationError, match="burst"):
        msgspec.json.decode(b'{"requests_per_minute": 10, "burst": 0}', type=RateLimitPolicy)


async def test_a_policy_of_zero_requests_is_for_the_caller_to_refuse(
    limiter: RateLimiter, redis_client: redis.asyncio.Redis
) -> None:
    policy = RateLimitPolicy(requests_per_minute=0, burst=1)
    with pytest.raises(ValueError, match="forbids"):
        await limiter.hit("alice", policy)
    assert await redis_client.keys("*") == []


async def test_decisions_are_counted_by_outcome(limiter: RateLimiter) -> None:
    policy = RateLimitPolicy(requests_per_minute=1, burst=1)
    allowed, limited = _count("allowed"), _count("limited")
    await limiter.hit("alice", policy)
    await limiter.hit("alice", policy)
    await limiter.hit("alice", policy)
    assert (_count("allowed") - allowed, _count("limited") - limited) == (1, 2)


async def test_with_redis_down_the_limiter_fails_open_by_default(
    unreachable_redis: redis.asyncio.Redis, log_capture: LogCapture
) -> None:
    limiter = RateLimiter(unreachable_redis, key_prefix=PREFIX)
    policy = RateLimitPolicy(requests_per_minute=60, burst=10)
    before = _count("failed_open")
    decision = await limiter.hit("alice", policy)
    assert decision == RateLimitDecision(
        allowed=True,
        limit=10,
        remaining=0,
        reset_s=0,
        retry_after_s=0,
        policy=policy,
        degraded=True,
    )
    assert decision.headers() == {}
    assert _count("failed_open") - before == 1
    [line] = log_capture.events("rate_limiter_unavailable")
    assert (line["level"], line["error"], line["on_redis_error"], line["unlogged_failures"]) == (
        "warning", "ConnectionError", "open", 0,
    )  # fmt: skip


async def test_with_redis_down_a_closed_limiter_raises(
    unreachable_redis: redis.asyncio.Redis,
) -> None:
    limiter = RateLimiter(unreachable_redis, key_prefix=PREFIX, on_redis_error="closed")
    before = _count("failed_closed")
    with pytest.raises(RateLimiterUnavailable):
        await limiter.hit("alice", RateLimitPolicy(requests_per_minute=60, burst=10))
    assert _count("failed_closed") - before == 1


async def test_a_redis_that_hangs_counts_as_down(silent_redis: redis.asyncio.Redis) -> None:
    policy = RateLimitPolicy(requests_per_minute=60, burst=10)
    opened = RateLimiter(silent_redis, key_prefix=PREFIX, timeout_s=0.1)
    decision = await asyncio.wait_for(opened.hit("alice", policy), timeout=5)
    assert (decision.allowed, decision.degraded) == (True, True)
    closed = RateLimiter(silent_redis, key_prefix=PREFIX, on_redis_error="closed", timeout_s=0.1)
    with pytest.raises(RateLimiterUnavailable):
        await asyncio.wait_for(closed.hit("alice", policy), timeout=5)


async def test_an_outage_is_logged_once_per_interval_with_the_failures_left_out(
    unreachable_redis: redis.asyncio.Redis,
    monkeypatch: pytest.MonkeyPatch,
    log_capture: LogCapture,
) -> None:
    limiter = RateLimiter(unreachable_redis, key_prefix=PREFIX)
    policy = RateLimitPolicy(requests_per_minute=60, burst=10)
    for _ in range(5):
        await limiter.hit("alice", policy)
    monkeypatch.setattr(ratelimit, "_WARNING_INTERVAL_S", 0.0)
    await limiter.hit("alice", policy)
    lines = log_capture.events("rate_limiter_unavailable")
    assert [line["unlogged_failures"] for line in lines] == [0, 4]


def test_limiters_refuse_a_meaningless_configuration() -> None:
    client = redis.asyncio.Redis()
    with pytest.raises(ValueError, match="key_prefix"):
        RateLimiter(client, key_prefix="")
    with pytest.raises(ValueError, match="on_redis_error"):
        RateLimiter(client, key_prefix=PREFIX, on_redis_error="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        RateLimiter(client, key_prefix=PREFIX, timeout_s=0)


def test_processes_hammering_one_subject_together_get_exactly_the_burst(redis_url: str) -> None:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.servicekit.ratelimit_worker",
                redis_url,
                "alice",
                "80",
                "8",
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        allowed = [int(worker.communicate(timeout=120)[0].strip()) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert all(worker.returncode == 0 for worker in workers)
    # 240 requests for a burst of 50 at one per minute: exactly 50 pass, however they interleave.
    assert sum(allowed) == ratelimit_worker.POLICY.burst == 50

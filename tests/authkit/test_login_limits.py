"""Login limits: exact per username and per address, hashed keys, a deliberate Redis-down rule."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio
from structlog.testing import capture_logs

from authkit.constants import LOGIN_ADDRESS_KEY_PREFIX, LOGIN_USERNAME_KEY_PREFIX, REDIS_KEY_PREFIX
from authkit.error_codes import AuthError, AuthErrorCode
from authkit.login_limits import Decision, LoginLimiter, address_key, username_key

ADDRESS = "192.0.2.10"


async def _failures(limiter: LoginLimiter, username: str, address: str, count: int) -> None:
    for _ in range(count):
        assert (await limiter.check(username, address)).allowed


async def test_the_sixth_attempt_within_five_minutes_is_refused(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(redis_client)
    await _failures(limiter, "alice", ADDRESS, 5)
    decision = await limiter.check("alice", ADDRESS)
    assert decision.allowed is False
    assert 295 <= decision.retry_after_s <= 300
    assert decision.attempt_id is None


async def test_a_refused_attempt_does_not_extend_the_wait(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(redis_client, per_username=(1, 300))
    await _failures(limiter, "alice", ADDRESS, 1)
    for _ in range(3):
        assert not (await limiter.check("alice", ADDRESS)).allowed
    assert await redis_client.zcard(username_key("alice")) == 1


async def test_usernames_are_limited_apart_and_whatever_their_case(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(redis_client, per_username=(2, 300))
    await _failures(limiter, "Alice", ADDRESS, 1)
    await _failures(limiter, "ALICE", "198.51.100.7", 1)
    assert not (await limiter.check("alice", "203.0.113.9")).allowed
    assert (await limiter.check("bob", ADDRESS)).allowed


async def test_one_address_trying_many_usernames_is_refused(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(redis_client, per_address=(3, 300))
    for name in ("alice", "bob", "carol"):
        await _failures(limiter, name, ADDRESS, 1)
    assert not (await limiter.check("dave", ADDRESS)).allowed
    assert (await limiter.check("dave", "198.51.100.7")).allowed


async def test_any_username_can_be_limited(redis_client: redis.asyncio.Redis) -> None:
    limiter = LoginLimiter(redis_client, per_username=(1, 300))
    for name in ("", "ünïcödé", "bad\ud800name", "x" * 10_000):
        assert (await limiter.check(name, ADDRESS)).allowed
        assert not (await limiter.check(name, ADDRESS)).allowed


async def test_redis_keys_hold_no_raw_username_or_address(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(redis_client)
    await limiter.check("Alice.Example", ADDRESS)
    keys = sorted(key.decode() for key in await redis_client.keys(REDIS_KEY_PREFIX + "*"))
    assert keys == sorted([address_key(ADDRESS), username_key("alice.example")])
    assert all("alice" not in key.lower() and ADDRESS not in key for key in keys)
    assert keys[0].startswith(LOGIN_ADDRESS_KEY_PREFIX)
    assert keys[1].startswith(LOGIN_USERNAME_KEY_PREFIX)


async def test_windows_expire_in_redis(redis_client: redis.asyncio.Redis) -> None:
    limiter = LoginLimiter(redis_client, per_username=(5, 300), per_address=(20, 60))
    await limiter.check("alice", ADDRESS)
    assert 299_000 < await redis_client.pttl(username_key("alice")) <= 300_000
    assert 59_000 < await redis_client.pttl(address_key(ADDRESS)) <= 60_000


async def test_a_success_clears_the_usernames_failures_and_uncounts_itself_for_the_address(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(redis_client, per_username=(3, 300), per_address=(5, 300))
    await _failures(limiter, "alice", ADDRESS, 2)
    success = await limiter.check("alice", ADDRESS)
    await limiter.record_success("alice", ADDRESS, success)
    assert await redis_client.exists(username_key("alice")) == 0
    # The two failures still count for the address; the success does not.
    assert await redis_client.zcard(address_key(ADDRESS)) == 2


async def test_many_successes_from_one_address_never_lock_it(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(redis_client, per_address=(3, 300))
    for index in range(10):
        decision = await limiter.check(f"user{index}", ADDRESS)
        assert decision.allowed
        await limiter.record_success(f"user{index}", ADDRESS, decision)


async def test_reset_unlocks_a_username(redis_client: redis.asyncio.Redis) -> None:
    limiter = LoginLimiter(redis_client, per_username=(2, 300))
    await _failures(limiter, "alice", ADDRESS, 2)
    await limiter.reset("ALICE")
    assert (await limiter.check("alice", ADDRESS)).allowed


async def test_the_window_slides(redis_client: redis.asyncio.Redis) -> None:
    limiter = LoginLimiter(redis_client, per_username=(2, 1.0))
    await _failures(limiter, "alice", ADDRESS, 1)
    await asyncio.sleep(0.5)
    await _failures(limiter, "alice", ADDRESS, 1)
    refused = await limiter.check("alice", ADDRESS)
    assert (refused.allowed, refused.retry_after_s) == (False, 1)
    await asyncio.sleep(0.6)  # the first attempt left the window, the second has not
    assert (await limiter.check("alice", ADDRESS)).allowed
    assert not (await limiter.check("alice", ADDRESS)).allowed


async def test_concurrent_attempts_from_many_clients_never_exceed_the_limit(
    redis_url: str,
) -> None:
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(5)]
    try:
        limiters = [LoginLimiter(client, per_username=(5, 300)) for client in clients]
        decisions = await asyncio.gather(
            *(limiters[index % 5].check("alice", f"198.51.100.{index}") for index in range(60))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert sum(decision.allowed for decision in decisions) == 5


def test_a_refused_decision_raises_429_with_retry_after() -> None:
    Decision(allowed=True).raise_if_denied()
    with pytest.raises(AuthError) as caught:
        Decision(allowed=False, retry_after_s=17).raise_if_denied()
    assert caught.value.code == AuthErrorCode.TOO_MANY_LOGIN_ATTEMPTS
    assert caught.value.status_code == 429
    assert caught.value.headers["Retry-After"] == "17"


def test_limits_must_allow_at_least_one_attempt_in_a_positive_window(
    redis_client: redis.asyncio.Redis,
) -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        LoginLimiter(redis_client, per_username=(0, 300))
    with pytest.raises(ValueError, match="positive window"):
        LoginLimiter(redis_client, per_address=(5, 0))


async def test_with_redis_down_logins_fail_closed_by_default(
    unreachable_redis: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(unreachable_redis)
    with capture_logs() as logs, pytest.raises(AuthError) as caught:
        await limiter.check("alice", ADDRESS)
    assert (caught.value.status_code, caught.value.code) == (503, "service_unavailable")
    assert logs[0]["event"] == "login_limiter_unavailable"
    assert "alice" not in repr(logs)
    assert ADDRESS not in repr(logs)


async def test_with_redis_down_fail_open_lets_logins_through(
    unreachable_redis: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(unreachable_redis, fail_open=True)
    with capture_logs() as logs:
        decision = await limiter.check("alice", ADDRESS)
    assert decision == Decision(allowed=True)
    assert logs[0]["fail_open"] is True


async def test_a_redis_that_hangs_counts_as_down(silent_redis: redis.asyncio.Redis) -> None:
    limiter = LoginLimiter(silent_redis, timeout_s=0.2)
    with pytest.raises(AuthError) as caught:
        await asyncio.wait_for(limiter.check("alice", ADDRESS), timeout=2)
    assert caught.value.status_code == 503


async def test_a_success_is_not_undone_by_redis_being_down(
    unreachable_redis: redis.asyncio.Redis,
) -> None:
    limiter = LoginLimiter(unreachable_redis, fail_open=True)
    await limiter.record_success("alice", ADDRESS, Decision(allowed=True, attempt_id="a1"))


async def test_an_unlock_with_redis_down_is_refused(
    unreachable_redis: redis.asyncio.Redis,
) -> None:
    with pytest.raises(AuthError) as caught:
        await LoginLimiter(unreachable_redis).reset("alice")
    assert caught.value.status_code == 503

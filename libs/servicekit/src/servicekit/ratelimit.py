"""Per-subject rate limits in Redis, exact across any number of server processes.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one
timestamp). A policy of ``requests_per_minute`` and ``burst`` gives the emission interval
T = 60 s / requests_per_minute; each subject has a theoretical arrival time (TAT) in Redis.
A request at ``now`` passes when ``now >= max(TAT, now) + T - burst * T``, and then moves the
TAT on by T. So a subject idle for ``burst * T`` may send ``burst`` requests at once, and
after that one request every T.

Each decision is ONE Lua script (registered once, run with EVALSHA and loaded again on
NOSCRIPT): it reads the TAT, decides, and writes the new TAT with a TTL that ends exactly
when the subject is idle again (``SET ... PX``), all atomically, so concurrent requests from
any number of processes can never get past the limit. Time is the Redis server's own clock
(``TIME``), so the clocks of the gateway hosts do not matter. Times are integer
microseconds; T is rounded *up* to the whole microsecond, so the limit is never looser
than the policy (at most 1 µs per request stricter).

Keys are ``{key_prefix}{subject}``; the caller names its prefix in its own constants module.

Headers follow draft-ietf-httpapi-ratelimit-headers-11 (May 2026; structured fields, the
same syntax since -08), with one policy named ``"burst"``:

- ``RateLimit-Policy: "burst";q=<burst>;w=<ceil(burst * T) seconds>``. A bucket of
  ``burst`` requests that refills completely in ``burst * T``: a client that never sends
  more than q requests in any w seconds is never refused, q is also the most that may
  arrive at once, and q / w is the sustained rate (w is rounded up to whole seconds, which
  only makes the promise safer). For 60 requests per minute with a burst of 10:
  ``"burst";q=10;w=10``.
- ``RateLimit: "burst";r=<remaining>;t=<seconds>``. While requests pass, t is the time until
  the whole quota is available again (r rises back to q; the bucket refills one request
  every T meanwhile). On a refusal r is 0 and t equals ``Retry-After``, the time until the
  next request may pass: the draft says Retry-After SHOULD NOT point before the end of the
  effective window, and within it the client can indeed use nothing.
- ``Retry-After: <seconds>`` on refusals only.

All seconds are rounded up. A degraded decision (Redis could not be asked, the limiter
failed open) sends no header: it knows nothing true to say.

Policies: ``burst`` must be at least 1. ``requests_per_minute == 0`` is a valid policy
value meaning "no requests at all", but it is not a rate: `RateLimiter.hit` raises
``ValueError`` for it, because the caller must answer such a subject itself (403) instead
of asking the limiter for a Retry-After that does not exist.

When Redis fails (connection, protocol or server error, or no answer within ``timeout_s``),
``on_redis_error="open"`` lets the request through with ``degraded=True`` and
``"closed"`` raises `RateLimiterUnavailable` (answer 503). Either way a warning is logged at
most once every few seconds per limiter, with the count of failures it did not log.

Every decision is counted in ``rate_limit_decisions_total{outcome}``, outcome one of
``allowed``, ``limited``, ``failed_open``, ``failed_closed``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Final, Literal

import msgspec
import redis.asyncio
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

__all__ = [
    "DECISIONS",
    "POLICY_NAME",
    "RateLimitDecision",
    "RateLimitPolicy",
    "RateLimiter",
    "RateLimiterUnavailable",
]

POLICY_NAME: Final = "burst"
"""The policy's name in the ``RateLimit-Policy`` and ``RateLimit`` headers."""

OnRedisError = Literal["open", "closed"]
Outcome = Literal["allowed", "limited", "failed_open", "failed_closed"]

DECISIONS: Final = Counter(
    "rate_limit_decisions_total",
    "Rate limit decisions, by outcome: allowed, limited, failed_open, failed_closed.",
    ("outcome",),
)
for _outcome in ("allowed", "limited", "failed_open", "failed_closed"):
    DECISIONS.labels(outcome=_outcome)  # every series exists from the start, at 0

_US_PER_S: Final = 1_000_000
_US_PER_MINUTE: Final = 60 * _US_PER_S
# Lua numbers are doubles: exact integers up to 2**53 µs, about 285 years after 1970. A year
# of refill time keeps every TAT far below that.
_MAX_REFILL_US: Final = 366 * 86_400 * _US_PER_S
_WARNING_INTERVAL_S: Final = 10.0

_log = structlog.get_logger("servicekit.ratelimit")

# KEYS[1]: the subject's TAT. ARGV[1]: the emission interval T (µs), ARGV[2]: the burst.
# Returns {allowed (1 or 0), remaining, µs until the quota is full again, µs until the next
# request may pass (0 when allowed)}.
_GCRA_SCRIPT: Final = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local new_tat = tat + interval
-- '%.0f': tostring would print a 16-digit number in exponent form and lose microseconds.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}
"""


class RateLimitPolicy(msgspec.Struct, frozen=True):
    """A subject's limit: a sustained rate, and how many requests may arrive at once."""

    requests_per_minute: int
    """The sustained rate, >= 1; 0 means "no requests" (see the module docstring)."""
    burst: int
    """How many requests may arrive at once from idle, >= 1."""

    def __post_init__(self) -> None:
        if self.requests_per_minute < 0:
            raise ValueError("requests_per_minute must not be negative")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if self.requests_per_minute and self.burst * _interval_us(self) > _MAX_REFILL_US:
            raise ValueError("burst / requests_per_minute must refill within a year")


class RateLimitDecision(msgspec.Struct, frozen=True):
    """Whether one request passed, and what to tell the client about its quota."""

    allowed: bool
    limit: int
    """The quota in the header's sense: the policy's burst."""
    remaining: int
    """Requests still allowed right now (0 when degraded: unknown)."""
    reset_s: int
    """Seconds until the quota is fully available again (>= 0, rounded up; 0 when degraded)."""
    retry_after_s: int
    """0 when allowed; else seconds (>= 1, rounded up) until the next request may pass."""
    policy: RateLimitPolicy
    degraded: bool = False
    """True when Redis could not be asked and the limiter failed open."""

    def headers(self) -> dict[str, str]:
        """`RateLimit-Policy` and `RateLimit` (draft -11), plus `Retry-After` when refused."""
        if self.degraded:
            return {}
        window_s = self.reset_s if self.allowed else self.retry_after_s
        headers = {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w={_window_s(self.policy)}',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={window_s}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiterUnavailable(Exception):
    """Redis could not be asked and the limiter fails closed (answer 503)."""


class RateLimiter:
    """Counts requests per subject against a policy (see the module docstring).

    Create one per process: it registers its script with the client once.
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        key_prefix: str,
        on_redis_error: OnRedisError = "open",
        timeout_s: float = 0.25,
    ) -> None:
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        if on_redis_error not in ("open", "closed"):
            raise ValueError("on_redis_error must be 'open' or 'closed'")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._key_prefix = key_prefix
        self._on_redis_error = on_redis_error
        self._timeout_s = timeout_s
        self._script = redis.register_script(_GCRA_SCRIPT)
        self._last_warning_at = -math.inf
        self._unlogged_failures = 0

    def key(self, subject: str) -> str:
        """The Redis key holding ``subject``'s state."""
        return self._key_prefix + subject

    async def hit(self, subject: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Count one request of `subject` (e.g. a user id) if the policy allows it."""
        if policy.requests_per_minute == 0:
            raise ValueError("a policy of 0 requests per minute forbids requests: refuse them")
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await self._script(
                    keys=[self.key(subject)], args=[_interval_us(policy), policy.burst]
                )
        except (RedisError, OSError, TimeoutError) as error:
            return self._redis_failed(error, policy)
        allowed, remaining, reset_us, retry_after_us = (int(value) for value in reply)
        DECISIONS.labels(outcome="allowed" if allowed else "limited").inc()
        return RateLimitDecision(
            allowed=bool(allowed),
            limit=policy.burst,
            remaining=remaining,
            reset_s=_ceil_s(reset_us),
            retry_after_s=0 if allowed else max(1, _ceil_s(retry_after_us)),
            policy=policy,
        )

    def _redis_failed(self, error: Exception, policy: RateLimitPolicy) -> RateLimitDecision:
        fail_open = self._on_redis_error == "open"
        DECISIONS.labels(outcome="failed_open" if fail_open else "failed_closed").inc()
        self._warn(error)
        if not fail_open:
            raise RateLimiterUnavailable("the rate limiter cannot reach Redis") from error
        return RateLimitDecision(
            allowed=True,
            limit=policy.burst,
            remaining=0,
            reset_s=0,
            retry_after_s=0,
            policy=policy,
            degraded=True,
        )

    def _warn(self, error: Exception) -> None:
        """Log a failure, at most once per interval, so an outage does not flood the log."""
        now = time.monotonic()
        if now - self._last_warning_at < _WARNING_INTERVAL_S:
            self._unlogged_failures += 1
            return
        # The error's class only: messages can carry addresses of internal servers.
        _log.warning(
            "rate_limiter_unavailable",
            error=type(error).__name__,
            on_redis_error=self._on_redis_error,
            unlogged_failures=self._unlogged_failures,
        )
        self._last_warning_at = now
        self._unlogged_failures = 0


def _interval_us(policy: RateLimitPolicy) -> int:
    """T in microseconds, rounded up so the sustained rate never exceeds the policy."""
    return -(-_US_PER_MINUTE // policy.requests_per_minute)


def _window_s(policy: RateLimitPolicy) -> int:
    """The header's w: seconds for an empty bucket to refill completely, rounded up."""
    return _ceil_s(policy.burst * _interval_us(policy))


def _ceil_s(microseconds: int) -> int:
    return -(-microseconds // _US_PER_S)

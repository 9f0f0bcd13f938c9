"""Login attempt limits per username and per client address, exact across processes.

Each username and each address has a sliding window in Redis: a sorted set of its recent
attempts scored by Redis' own clock. `LoginLimiter.check` is ONE Lua script that trims
both windows, refuses when either is full, and otherwise counts the attempt in both, so
concurrent attempts (from any number of processes) can never get past the limit. Every
attempt counts as a failure until `LoginLimiter.record_success` clears the username's
failures and takes the attempt back out of the address's window.

Keys hold a hash of the canonical username (`authkit.usernames`) and of the address,
never the raw value.

When Redis cannot be reached, ``fail_open=False`` (the default) refuses logins with 503
``service_unavailable``: a limiter that silently stops limiting would let an attacker who
can disturb Redis guess passwords at full speed. ``fail_open=True`` lets logins through
instead (each one still costs a full argon2 verification) and logs a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple, TypeVar

import msgspec
import redis.asyncio
import structlog
from redis.exceptions import RedisError

from authkit.constants import LOGIN_ADDRESS_KEY_PREFIX, LOGIN_USERNAME_KEY_PREFIX
from authkit.error_codes import AuthError, AuthErrorCode, too_many_login_attempts
from authkit.usernames import canonical_username

__all__ = ["Decision", "Limit", "LoginLimiter", "address_key", "username_key"]

_log = structlog.get_logger("authkit.login_limits")
T = TypeVar("T")

# KEYS: the username's window, the address's window.
# ARGV: username limit, username window (ms), address limit, address window (ms), attempt id.
# Returns 0 when the attempt was admitted (and counted), else the milliseconds to wait.
_CHECK_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function wait_ms(key, limit, window)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count < limit then return 0 end
  -- Below the limit again once the (count - limit + 1) oldest attempts have left the window.
  local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return tonumber(entry[2]) + window - now
end

local wait = math.max(
  wait_ms(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])),
  wait_ms(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4])))
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 0
"""


class Limit(NamedTuple):
    """At most ``attempts`` failed logins within any ``window_s`` seconds."""

    attempts: int
    window_s: float


class Decision(msgspec.Struct, frozen=True):
    """Whether a login attempt may go ahead; if not, how many seconds until it may."""

    allowed: bool
    retry_after_s: int = 0
    attempt_id: str | None = None
    """Set when the attempt was counted; `LoginLimiter.record_success` takes it back."""

    def raise_if_denied(self) -> None:
        """Raise 429 ``too_many_login_attempts`` (with ``Retry-After``) for a refused attempt."""
        if not self.allowed:
            raise too_many_login_attempts(self.retry_after_s)


def username_key(username: str) -> str:
    """The Redis key of a username's window: its canonical form, hashed.

    The same form the account lookup compares by, so every spelling that reaches one
    account counts against one window.
    """
    return LOGIN_USERNAME_KEY_PREFIX + _digest(canonical_username(username))


def address_key(address: str) -> str:
    """The Redis key of a client address's window (hashed)."""
    return LOGIN_ADDRESS_KEY_PREFIX + _digest(address.strip().lower())


class LoginLimiter:
    """Limits login attempts per username and per client address (see the module docstring)."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        per_username: tuple[int, float] = Limit(5, 300),
        per_address: tuple[int, float] = Limit(20, 300),
        fail_open: bool = False,
        timeout_s: float = 0.5,
    ) -> None:
        self._client = client
        self._per_username = _checked(Limit(*per_username))
        self._per_address = _checked(Limit(*per_address))
        self._fail_open = fail_open
        self._timeout_s = timeout_s
        self._script = client.register_script(_CHECK_SCRIPT)

    async def check(self, username: str, address: str) -> Decision:
        """Admit and count one attempt, or refuse it with the seconds to wait."""
        attempt_id = secrets.token_hex(8)
        keys = [username_key(username), address_key(address)]
        args: list[int | str] = [
            self._per_username.attempts,
            _ms(self._per_username.window_s),
            self._per_address.attempts,
            _ms(self._per_address.window_s),
            attempt_id,
        ]
        try:
            wait_ms = int(await self._bounded(lambda: self._script(keys=keys, args=args)))
        except AuthError:
            if not self._fail_open:
                raise
            return Decision(allowed=True)
        if wait_ms > 0:
            return Decision(allowed=False, retry_after_s=max(1, math.ceil(wait_ms / 1000)))
        return Decision(allowed=True, attempt_id=attempt_id)

    async def record_success(self, username: str, address: str, decision: Decision) -> None:
        """After a successful login: forget the username's failures, un-count this attempt."""

        async def clear() -> object:
            async with self._client.pipeline(transaction=True) as pipeline:
                pipeline.delete(username_key(username))
                if decision.attempt_id is not None:
                    pipeline.zrem(address_key(address), decision.attempt_id)
                return await pipeline.execute()

        # The user is logged in either way; if Redis is down, the failures just expire later.
        with contextlib.suppress(AuthError):
            await self._bounded(clear)

    async def reset(self, username: str) -> None:
        """Forget a username's failed attempts (an admin unlocking a user)."""
        await self._bounded(lambda: self._client.delete(username_key(username)))

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call within the timeout; 503 ``service_unavailable`` if Redis fails."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call()
        except (RedisError, OSError, TimeoutError) as error:
            # The error's class only: messages can carry addresses of internal servers.
            _log.warning(
                "login_limiter_unavailable",
                error=type(error).__name__,
                fail_open=self._fail_open,
            )
            raise AuthError(AuthErrorCode.SERVICE_UNAVAILABLE) from None


def _checked(limit: Limit) -> Limit:
    if limit.attempts < 1 or limit.window_s <= 0:
        raise ValueError("a login limit needs at least one attempt and a positive window")
    return limit


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _digest(value: str) -> str:
    # 128 bits of SHA-256: distinct keys for distinct names, and no name in Redis.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]

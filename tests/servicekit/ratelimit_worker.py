"""One process hammering one subject, for the rate limiter's cross-process exactness test.

``python -m tests.servicekit.ratelimit_worker REDIS_URL SUBJECT REQUESTS CONCURRENCY``
connects, prints ``ready``, waits for a line on stdin (so all workers start together), then
sends REQUESTS hits through CONCURRENCY concurrent tasks and prints how many were allowed.
Kept apart from the test module so the spawned interpreter does not import pytest.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio

from servicekit.ratelimit import RateLimiter, RateLimitPolicy

KEY_PREFIX = "test:ratelimit:"
POLICY = RateLimitPolicy(requests_per_minute=1, burst=50)


async def hammer(url: str, subject: str, requests: int, concurrency: int) -> int:
    """Send ``requests`` hits for ``subject``; return how many the limiter allowed."""
    client = redis.asyncio.Redis.from_url(url, max_connections=concurrency)
    try:
        # A timeout far above any real answer: this test is about exactness, not speed.
        limiter = RateLimiter(client, key_prefix=KEY_PREFIX, on_redis_error="closed", timeout_s=30)
        await client.ping()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        remaining = iter(range(requests))
        allowed = 0

        async def worker() -> None:
            nonlocal allowed
            for _ in remaining:
                decision = await limiter.hit(subject, POLICY)
                # Not `allowed += (await ...)`: that reads the count before awaiting.
                allowed += decision.allowed

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return allowed
    finally:
        await client.aclose()


if __name__ == "__main__":
    url, subject, requests, concurrency = sys.argv[1:5]
    print(asyncio.run(hammer(url, subject, int(requests), int(concurrency))), flush=True)

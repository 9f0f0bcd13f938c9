"""The request gateway as its benchmark runs it: served as operators serve it, with users
that came the way real ones come, logged in through its API.

- `serve_gateway`: `request-gateway serve` (the console script) with GATEWAY_* settings
  and 2 workers; it migrates its database itself. Stopped with SIGTERM to its process
  group (granian and its spawned workers);
- `seed_users`: one profile type and USERS users applied with the gateway's own sync code
  (`request_gateway.domain.sync`, what a user-sync batch from the processor runs), in one
  transaction; one argon2id hash shared by every user, since hashing USERS passwords would
  take most of a minute;
- `log_in`: `POST /api/v1/auth/login` for each user, for its access token. The login limiter
  allows 20 attempts per address in 5 minutes, but a successful login takes its attempt
  back out of the address's window, so USERS logins from 127.0.0.1 all pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from airlink.records import ProfileType, User
from authkit.passwords import hash_password
from bench import query_times
from bench.asgi_server import WORKERS, RunningServer, serve_command
from bench.link_bench import database_url, execute
from bench.wrk import WrkRequest
from request_gateway.domain.sync import SyncReport, apply_profile_types, apply_users
from servicekit.testing import free_ports

GATEWAY: Final = Path(sys.executable).parent / "request-gateway"
DATABASE: Final = "gateway_bench"
USERS: Final = 200
PASSWORD: Final = "bench user password 4711"  # noqa: S105 - a throwaway benchmark user's
LOGIN_CONCURRENCY: Final = 4  # argon2 verifications in flight, over 2 server processes
LOGIN_TIMEOUT_S: Final = 30.0
# The gateway's counters the report reads from `/metrics` around each of its scenarios.
COUNTERS: Final = ("rate_limit_decisions", "gateway_identity_cache_lookups")
# Limits no benchmark run reaches: every submit is counted (GCRA in Redis, pending quota
# in PostgreSQL) and allowed.
PROFILE: Final = ProfileType(
    name="bench",
    requests_per_minute=1_000_000,
    burst=1_000_000,
    allowed_request_types=["echo"],
    max_payload_bytes=65_536,
    max_pending_requests=10_000_000,
    version=1,
)


def gateway_environment(database: str, redis_url: str, data_dir: Path, port: int) -> dict[str, str]:
    """The GATEWAY_* settings the benchmark serves the gateway with."""
    return {
        "GATEWAY_WORKERS": str(WORKERS),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": database,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_DATA_DIR": str(data_dir),
        # At info the gateway writes one access line per request; at warning none.
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_LOG_FORMAT": "json",  # as in production; `log_events` reads it back
    }


@contextmanager
def serve_gateway(
    database: str, redis_url: str, *, data_dir: Path, log_path: Path
) -> Iterator[RunningServer]:
    """`request-gateway serve` until the block ends; yields once `/health/live` answers
    (`/health` and `/metrics` are on its operations port, `ops_url`)."""
    port, ops_port = free_ports(2)
    env = {
        **gateway_environment(database, redis_url, data_dir, port),
        "GATEWAY_OPS_PORT": str(ops_port),
    }
    with serve_command(
        [str(GATEWAY), "serve"], port=port, env=env, log_path=log_path, ready_path="/health/live"
    ) as server:
        yield dataclasses.replace(server, ops_url=f"http://127.0.0.1:{ops_port}")


async def prepare_database(server_url: str) -> str:
    """A fresh, empty database for the gateway (it migrates it when it starts); its URL."""
    await execute(server_url, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await execute(server_url, f"CREATE DATABASE {DATABASE}")
    return database_url(server_url, DATABASE)


async def seed_users(url: str, count: int = USERS) -> list[User]:
    """PROFILE and `count` active users, applied as a user-sync batch would apply them."""
    password_hash = await hash_password(PASSWORD)
    users = [
        User(
            id=uuid.uuid4(),
            username=f"bench-user-{number:04d}",
            password_hash=password_hash,
            roles=["user"],
            profile_type=PROFILE.name,
            active=True,
            must_change_password=False,
            version=1,
        )
        for number in range(count)
    ]
    report = SyncReport()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await apply_profile_types(conn, [PROFILE])
            await apply_users(conn, users, report)
    finally:
        await conn.close()
    if report.users != count:
        raise RuntimeError(f"the sync stored {report.users} of {count} users")
    return users


async def log_in(base_url: str, users: Sequence[User]) -> dict[uuid.UUID, str]:
    """Each user's access token, from `POST /api/v1/auth/login`."""
    limit = asyncio.Semaphore(LOGIN_CONCURRENCY)

    async def one(client: httpx.AsyncClient, user: User) -> tuple[uuid.UUID, str]:
        async with limit:
            response = await client.post(
                "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
            )
        if response.status_code != 200:
            raise RuntimeError(f"login of {user.username}: {response.status_code} {response.text}")
        token: str = response.json()["access_token"]
        return user.id, token

    async with httpx.AsyncClient(base_url=base_url, timeout=LOGIN_TIMEOUT_S) as client:
        pairs = await asyncio.gather(*(one(client, user) for user in users))
    return dict(pairs)


async def sample_requests(url: str, count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Up to `count` (request id, user id) pairs of stored requests, in random order, the
    table vacuumed and analysed first (as the ceiling's is)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE request")
        records = await conn.fetch(
            "SELECT id, user_id FROM request ORDER BY random() LIMIT $1", count
        )
    finally:
        await conn.close()
    return [(record["id"], record["user_id"]) for record in records]


async def send_once(base_url: str, requests: Sequence[WrkRequest], *, expect: int) -> None:
    """Send each request once (a few at a time); any other status than `expect` is an error."""
    limit = asyncio.Semaphore(LOGIN_CONCURRENCY * 4)

    async def one(client: httpx.AsyncClient, request: WrkRequest) -> None:
        async with limit:
            response = await client.request(
                request.method, request.path, headers=dict(request.headers), content=request.body
            )
        if response.status_code != expect:
            raise RuntimeError(
                f"{request.method} {request.path}: {response.status_code} {response.text}"
            )

    async with httpx.AsyncClient(base_url=base_url, timeout=LOGIN_TIMEOUT_S) as client:
        await asyncio.gather(*(one(client, request) for request in requests))


def log_events(log_path: Path) -> dict[str, int]:
    """How many lines of each level and event the gateway's JSON log holds."""
    counts: dict[str, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            name = f"{entry.get('level', '?')}: {entry.get('event', '?')}"
        except (ValueError, AttributeError):
            name = "(not JSON)"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def read_metrics(ops_url: str) -> str:
    """The gateway's `/metrics` (its operations port, summed over its workers)."""
    return httpx.get(f"{ops_url}/metrics", timeout=LOGIN_TIMEOUT_S).raise_for_status().text


def read_query_buckets(ops_url: str) -> query_times.Buckets:
    """The gateway's query-time histogram (every worker's queries)."""
    return query_times.read_buckets(read_metrics(ops_url))


def read_counters(ops_url: str) -> dict[str, float]:
    """COUNTERS from the gateway's `/metrics`, by labels."""
    text = read_metrics(ops_url)
    counters: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in COUNTERS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                name = f"{family.name}{{{labels}}}"
                counters[name] = counters.get(name, 0.0) + sample.value
    return counters

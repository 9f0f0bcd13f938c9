"""Where a gateway request's CPU goes: cProfile over requests sent straight into its ASGI app.

    python -m bench.gateway_profile [submit|status_read|me|health_live] [REQUESTS]

No server and no wrk: embedded PostgreSQL and Redis in a temporary folder, the gateway's
app built by `create_app` with its lifespan (migrations, pool, identity cache, link), USERS
users synced with the gateway's own sync code and logged in through the app, then REQUESTS
(3,000) requests of the scenario, CONCURRENCY at a time on uvloop: once unprofiled, for the
CPU microseconds per request, then under cProfile, whose top functions by own time and by
cumulative time are printed. Counts of coroutines are inflated (cProfile counts each resume
as a call); times are not. Not a benchmark: the figures in bench/results come from
`python -m bench request-gateway`.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import msgspec
import uvloop

from bench.gateway_requests import submit_body
from bench.gateway_service import PASSWORD, prepare_database, seed_users
from request_gateway.app import create_app
from request_gateway.settings import GatewaySettings
from servicekit.embedded import resolve_service_urls
from servicekit.logs import configure_logging

USERS: Final = 20
CONCURRENCY: Final = 50
TOP: Final = 30
JSON: Final = {"content-type": "application/json"}
Call = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body


class Client:
    """Calls an ASGI app directly: one request in, status and body out."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        raw = [(b"host", b"127.0.0.1"), *((k.encode(), v.encode()) for k, v in headers.items())]
        if body:
            raw.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            else:
                answer["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        return answer


async def _log_in(client: Client, usernames: list[str]) -> list[str]:
    tokens = []
    for username in usernames:
        body = msgspec.json.encode({"username": username, "password": PASSWORD})
        answer = await client("POST", "/api/v1/auth/login", JSON, body)
        tokens.append(msgspec.json.decode(answer["body"])["access_token"])
    return tokens


async def _calls(kind: str, client: Client, tokens: list[str], count: int) -> list[Call]:
    def bearer(n: int) -> dict[str, str]:
        return {"authorization": f"Bearer {tokens[n % len(tokens)]}"}

    if kind == "submit":
        return [
            ("POST", "/api/v1/requests", {**JSON, **bearer(n)}, submit_body(n).encode())
            for n in range(count)
        ]
    if kind == "me":
        return [("GET", "/api/v1/me", bearer(n), b"") for n in range(count)]
    if kind == "health_live":
        return [("GET", "/health/live", {}, b"") for _ in range(count)]
    if kind == "status_read":
        # One request per user; read n uses token n % users, the owner of request n % users.
        submits = await _calls("submit", client, tokens, len(tokens))
        ids = [msgspec.json.decode((await client(*call))["body"])["id"] for call in submits]
        return [
            ("GET", f"/api/v1/requests/{ids[n % len(ids)]}", bearer(n), b"") for n in range(count)
        ]
    raise SystemExit(f"unknown scenario {kind!r}: submit, status_read, me or health_live")


async def _run(calls: list[Call], client: Client) -> dict[int, int]:
    limit = asyncio.Semaphore(CONCURRENCY)
    statuses: dict[int, int] = {}

    async def one(call: Call) -> None:
        async with limit:
            answer = await client(*call)
        statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1

    await asyncio.gather(*(one(call) for call in calls))
    return statuses


async def _timed(label: str, work: Callable[[], Awaitable[dict[int, int]]], count: int) -> None:
    started = time.process_time()
    statuses = await work()
    cpu_us = (time.process_time() - started) / count * 1e6
    print(f"{label}: {cpu_us:,.0f} µs CPU per request; statuses {statuses}", flush=True)


async def profile(kind: str, count: int, work: Path) -> str:
    """Profile `count` requests of `kind`; the printed statistics."""
    services = resolve_service_urls(None, None, work)
    try:
        database = await prepare_database(services.database_url)
        settings = GatewaySettings(
            data_dir=work / "gateway",
            database_url=database,
            redis_url=services.redis_url,
            log_level="warning",
        )
        configure_logging("request-gateway", json=True, level="warning")
        app = create_app(settings)
        client = Client(app)
        async with app.lifespan():
            users = await seed_users(database, USERS)
            tokens = await _log_in(client, [user.username for user in users])
            calls = await _calls(kind, client, tokens, count)
            await _run(calls[: count // 10], client)  # caches, pool, code paths warm
            await _timed(f"{kind}, unprofiled", lambda: _run(calls, client), count)
            profiler = cProfile.Profile()
            profiler.enable()
            await _timed(f"{kind}, under cProfile", lambda: _run(calls, client), count)
            profiler.disable()
    finally:
        services.stop()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(TOP)
    stats.sort_stats("cumulative").print_stats(TOP)
    return out.getvalue()


def main(argv: list[str]) -> int:
    """Run one scenario's profile and print it."""
    kind = argv[0] if argv else "submit"
    count = int(argv[1]) if len(argv) > 1 else 3_000
    with tempfile.TemporaryDirectory(prefix="airlock-gateway-profile-") as folder:
        print(uvloop.run(profile(kind, count, Path(folder))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

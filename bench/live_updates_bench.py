"""Request status updates pushed by Server-Sent Events against polling every second.

One run, two phases of WINDOW_S seconds each, on the same gateway (`request-gateway
serve`, 2 workers, embedded PostgreSQL and Redis): USERS users, each with REQUESTS_PER_USER
requests, and a driver in this process that moves every request through `exported`,
`delivered` and `completed` at random moments of the window (plain UPDATEs on the gateway's
database, as the link worker's would be: the trigger numbers and notifies each change).

- `sse`: each user holds one `GET /api/v1/requests/events` stream;
- `poll`: each user reads each of their unfinished requests with `GET /api/v1/requests/{id}`
  once a second until it is final.

Both phases drive the same number of changes; the report gives the CPU seconds the
gateway's processes and PostgreSQL used in each window (bench/cpu_meter.py), per request
followed, and how long after its commit the client saw each `completed`.
BENCH_LIVE_WINDOW_S (30), BENCH_LIVE_USERS (50) and BENCH_LIVE_REQUESTS (4) override.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx

from bench.asgi_server import RunningServer, serve_command
from bench.cpu_meter import CpuMeter, PidSource, process_and_children, process_group
from bench.gateway_service import (
    GATEWAY,
    gateway_environment,
    log_in,
    prepare_database,
    seed_users,
)
from bench.harness import cpu_flags, cpu_line, machine, percentile, write_report
from servicekit.embedded import EmbeddedServices, resolve_service_urls
from servicekit.testing import free_port

NAME: Final = "request-gateway-live"
WINDOW_S: Final = float(os.environ.get("BENCH_LIVE_WINDOW_S", "30"))
USERS: Final = int(os.environ.get("BENCH_LIVE_USERS", "50"))
REQUESTS_PER_USER: Final = int(os.environ.get("BENCH_LIVE_REQUESTS", "4"))
POLL_INTERVAL_S: Final = 1.0
TICK_S: Final = 0.1  # how often the driver commits the changes that are due
STEPS: Final = ("exported", "delivered", "completed")
TIMEOUT_S: Final = 30.0


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    requests: int
    changes: int = 0
    http_requests: int = 0
    events: int = 0
    seen_after_s: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)


async def submit_all(base_url: str, tokens: dict[uuid.UUID, str]) -> dict[uuid.UUID, list[str]]:
    """REQUESTS_PER_USER echo requests per user; their ids by user."""
    made: dict[uuid.UUID, list[str]] = {user: [] for user in tokens}
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as client:
        for user, token in tokens.items():
            for number in range(REQUESTS_PER_USER):
                response = await client.post(
                    "/api/v1/requests",
                    json={"type": "echo", "payload": {"n": number}},
                    headers={"Authorization": f"Bearer {token}"},
                )
                response.raise_for_status()
                made[user].append(response.json()["id"])
    return made


async def drive(database: str, request_ids: Sequence[str], committed: dict[str, float]) -> int:
    """Move each request through STEPS at random moments of the window; return the changes.

    `committed` gets the time each request's `completed` was committed.
    """
    rng = random.Random(15)
    schedule: list[tuple[float, int, str]] = []
    for request_id in request_ids:
        moments = sorted(rng.uniform(0, WINDOW_S - 2) for _ in STEPS)
        schedule += [(at, step, request_id) for step, at in enumerate(moments)]
    schedule.sort()
    conn = await asyncpg.connect(database)
    started, changes, index = time.monotonic(), 0, 0
    try:
        while index < len(schedule):
            now = time.monotonic() - started
            due: dict[int, list[uuid.UUID]] = {}
            while index < len(schedule) and schedule[index][0] <= now:
                _, step, request_id = schedule[index]
                due.setdefault(step, []).append(uuid.UUID(request_id))
                index += 1
            for step in sorted(due):
                await conn.execute(
                    "UPDATE request SET status = $2::text, updated_at = now(),"
                    " result = CASE WHEN $2::text = 'completed' THEN '{\"ok\": true}'::jsonb END,"
                    " finished_at = CASE WHEN $2::text = 'completed' THEN now() END"
                    " WHERE id = ANY($1)",
                    due[step],
                    STEPS[step],
                )
                changes += len(due[step])
                if STEPS[step] == "completed":
                    at = time.monotonic()
                    committed.update({str(request_id): at for request_id in due[step]})
            await asyncio.sleep(TICK_S)
    finally:
        await conn.close()
    return changes


async def follow_by_events(
    base_url: str, token: str, wanted: set[str], phase: Phase, seen: dict[str, float]
) -> None:
    """One user's stream, until each of `wanted` was seen completed."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=WINDOW_S + TIMEOUT_S) as client,
        client.stream("GET", "/api/v1/requests/events", headers=headers) as response,
    ):
        response.raise_for_status()
        phase.http_requests += 1
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            phase.events += 1
            try:
                request = json.loads(line[5:])
            except ValueError:
                raise RuntimeError(repr(line)) from None
            if request["status"] == "completed" and request["id"] in wanted:
                seen[request["id"]] = time.monotonic()
                wanted.discard(request["id"])
                if not wanted:
                    return


async def follow_by_polling(
    base_url: str, token: str, wanted: set[str], phase: Phase, seen: dict[str, float]
) -> None:
    """One user's polls: each unfinished request once a second, until all are completed."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as client:
        await asyncio.sleep(random.uniform(0, POLL_INTERVAL_S))  # users do not poll in step
        while wanted:
            tick = time.monotonic()
            for request_id in sorted(wanted):
                response = await client.get(f"/api/v1/requests/{request_id}", headers=headers)
                response.raise_for_status()
                phase.http_requests += 1
                if response.json()["status"] == "completed":
                    seen[request_id] = time.monotonic()
                    wanted.discard(request_id)
            await asyncio.sleep(max(0.0, POLL_INTERVAL_S - (time.monotonic() - tick)))


async def run_phase(
    name: str, base_url: str, database: str, tokens: dict[uuid.UUID, str], meter: CpuMeter
) -> Phase:
    """Submit fresh requests, then follow them one way while the driver moves them."""
    made = await submit_all(base_url, tokens)
    phase = Phase(name, requests=sum(len(ids) for ids in made.values()))
    follow = follow_by_events if name == "sse" else follow_by_polling
    committed: dict[str, float] = {}
    seen: dict[str, float] = {}
    followers = [
        asyncio.create_task(follow(base_url, tokens[user], set(ids), phase, seen))
        for user, ids in made.items()
    ]
    await asyncio.sleep(1.0)  # streams open (and first polls sent) before the window starts
    with meter.measure() as use:
        all_ids = [request_id for ids in made.values() for request_id in ids]
        phase.changes = await drive(database, all_ids, committed)
        await asyncio.wait_for(asyncio.gather(*followers), timeout=WINDOW_S + TIMEOUT_S)
    phase.cpu_s = use.seconds
    phase.seen_after_s = [seen[request_id] - committed[request_id] for request_id in committed]
    return phase


async def _bench(services: EmbeddedServices, work: Path) -> tuple[list[Phase], dict[str, Any]]:
    database = await prepare_database(services.database_url)
    port = free_port()
    env = {
        **gateway_environment(database, services.redis_url, work / "gateway", port),
        "GATEWAY_MAX_OPEN_WAITS": str(2 * USERS),  # one worker may get every stream
    }
    with serve_command(
        [str(GATEWAY), "serve"], port=port, env=env, log_path=work / "gateway.log",
        ready_path="/health/live",
    ) as server:  # fmt: skip
        users = await seed_users(database, USERS)
        tokens = await log_in(server.base_url, users)
        meter = CpuMeter(_groups(services, server))
        phases = [
            await run_phase(name, server.base_url, database, tokens, meter)
            for name in ("sse", "poll")
        ]
    return phases, {"users": USERS, "requests_per_user": REQUESTS_PER_USER, "window_s": WINDOW_S}


def _groups(services: EmbeddedServices, server: RunningServer) -> dict[str, PidSource]:
    groups: dict[str, PidSource] = {"gateway": process_group(server.pid)}
    if services.postgres is not None:
        groups["postgres"] = process_and_children(services.postgres.pgdata / "postmaster.pid")
    return groups


def run() -> Path:
    """Run both phases once; return the report's path."""
    work = Path(tempfile.mkdtemp(prefix="airlock-live-bench-"))
    print(f"{NAME}: {USERS} users x {REQUESTS_PER_USER} requests, {WINDOW_S} s per phase ...")
    services = resolve_service_urls(None, None, work)
    try:
        phases, setup = asyncio.run(_bench(services, work))
    except BaseException:
        print(f"{NAME}: failed; the gateway's log is kept in {work}")
        raise
    finally:
        services.stop()
    shutil.rmtree(work, ignore_errors=True)
    return _report(phases, setup)


def _figures(phase: Phase) -> dict[str, Any]:
    server_s = phase.cpu_s.get("gateway", 0.0) + phase.cpu_s.get("postgres", 0.0)
    return {
        "requests_followed": phase.requests,
        "status_changes": phase.changes,
        "http_requests": phase.http_requests,
        "events": phase.events,
        "cpu_s": phase.cpu_s,
        "server_cpu_ms_per_request": round(1000 * server_s / phase.requests, 2),
        "gateway_cpu_ms_per_request": round(
            1000 * phase.cpu_s.get("gateway", 0.0) / phase.requests, 2
        ),
        "completed_seen_after_ms": {
            "p50": round(1000 * percentile(phase.seen_after_s, 0.5), 1),
            "p99": round(1000 * percentile(phase.seen_after_s, 0.99), 1),
        },
    }


def _report(phases: list[Phase], setup: dict[str, Any]) -> Path:
    figures = {phase.name: _figures(phase) for phase in phases}
    sse, poll = figures["sse"], figures["poll"]
    ratio = round(
        poll["server_cpu_ms_per_request"] / max(sse["server_cpu_ms_per_request"], 1e-9), 2
    )
    cpu = cpu_flags()
    lines = [
        f"# {NAME}: status updates by Server-Sent Events against polling every second",
        "",
        f"{setup['users']} users x {setup['requests_per_user']} requests per phase; a driver "
        "moves each request through exported, delivered, completed at random moments of a "
        f"{setup['window_s']:.0f} s window (UPDATEs on the gateway's database). `request-gateway"
        " serve`, 2 workers; embedded PostgreSQL 16 and Redis; clients in the benchmark's"
        " process on the same 2 vCPUs. Server CPU = the gateway's processes + PostgreSQL (the"
        " driver's backend included, the same in both phases).",
        "",
        f"{cpu_line(cpu)}. Machine: {machine()}.",
        "",
        "| phase | requests | changes | HTTP requests | events | gateway CPU s"
        " | PostgreSQL CPU s | server CPU ms / request | gateway CPU ms / request"
        " | completed seen after p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, item in figures.items():
        lines.append(
            f"| {name} | {item['requests_followed']} | {item['status_changes']} | "
            f"{item['http_requests']} | {item['events']} | {item['cpu_s'].get('gateway', 0):.2f} | "
            f"{item['cpu_s'].get('postgres', 0):.2f} | {item['server_cpu_ms_per_request']} | "
            f"{item['gateway_cpu_ms_per_request']} | {item['completed_seen_after_ms']['p50']} / "
            f"{item['completed_seen_after_ms']['p99']} |"
        )
    lines += [
        "",
        f"Polling costs {ratio}x the server CPU per request of the event stream.",
        "",
        "Reproduce: `uv run python -m bench request-gateway-live` (BENCH_LIVE_WINDOW_S, "
        "BENCH_LIVE_USERS, BENCH_LIVE_REQUESTS).",
        "",
    ]
    return write_report(
        NAME,
        {"setup": setup, "cpu": cpu, "phases": figures, "poll_over_sse": ratio},
        "\n".join(lines),
    )

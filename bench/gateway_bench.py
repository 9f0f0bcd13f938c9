"""Request gateway under HTTP load (wrk, 100 connections), against a same-run ceiling.

The ceiling (bench/ceiling_app.py, under granian with 2 workers like the gateway):

- `ceiling_insert`: `POST /insert`, a msgspec-validated body and one INSERT through an
  asyncpg pool; the bodies rotate through SUBMIT_VARIANTS payloads, each request with its
  own JWT-sized `Authorization` header (ignored), so that wrk does the same work per
  request as in the gateway's authenticated run;
- `ceiling_read`: `GET /rows/{id}`, a primary-key SELECT, over READ_IDS ids of the rows
  the insert runs created (VACUUM ANALYZE first);
- `ceiling_index`: `GET /`, a constant JSON body: framework and server alone.

The gateway (bench/gateway_service.py: `request-gateway serve`, 2 workers, its own
database on the same PostgreSQL server, the same Redis; USERS users synced through its
sync code and logged in through its API):

- `submit`: `POST /api/v1/requests` with the same SUBMIT_VARIANTS bodies, rotating through
  the users' bearer tokens: authentication, the profile's checks, the user's GCRA rate
  limit (one Lua script in Redis), one `submit_request` round trip (pending quota + INSERT);
- `status_read`: `GET /api/v1/requests/{id}` of READ_IDS requests the submit runs created,
  each with its owner's token (VACUUM ANALYZE first);
- `health`: `GET /health` (PostgreSQL, Redis, both link folders, the link).

Scenarios run in pairs, ceiling and gateway back to back, so that the machine's changing
speed hits both alike; ROUNDS rounds, the gateway first in every second round; the report
gives each scenario's median over the rounds. Then, once, the profiling variants (see
`profile_variants`), and for every run the CPU seconds of the server, PostgreSQL, Redis,
wrk and everything else on the machine (bench/cpu_meter.py).

Embedded PostgreSQL and Redis unless AIRLOCK_BENCH_DATABASE_URL (an admin URL) and
AIRLOCK_BENCH_REDIS_URL name servers. BENCH_GATEWAY_DURATION_S (15), BENCH_GATEWAY_WARMUP_S
(3), BENCH_GATEWAY_ROUNDS (2) and BENCH_GATEWAY_PROFILE_S (10; 0 skips the variants) set
the measured and warm-up seconds of each scenario, the rounds, and each variant's seconds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Final

import asyncpg

from bench import ceiling_app, gateway_report, query_times
from bench.asgi_server import (
    REPO_ROOT,
    WORKERS,
    RunningServer,
    event_loop_note,
    granian_auto_loop,
    serve_granian,
)
from bench.cpu_meter import CpuMeter, PidSource, process_and_children, process_group
from bench.gateway_report import ScenarioRun
from bench.gateway_requests import (
    SUBMIT_VARIANTS,
    TOKEN_CHARS,
    ceiling_submit_requests,
    gateway_submit_requests,
    replay_requests,
    status_read_requests,
)
from bench.gateway_service import DATABASE as GATEWAY_DATABASE
from bench.gateway_service import (
    log_events,
    log_in,
    read_counters,
    read_query_buckets,
    sample_requests,
    seed_users,
    send_once,
    serve_gateway,
)
from bench.gateway_service import prepare_database as prepare_gateway_database
from bench.harness import median
from bench.link_bench import database_url, execute
from bench.wrk import WrkErrors, WrkRequest, WrkResult, ensure_wrk, run_wrk
from servicekit.embedded import EmbeddedServices, resolve_service_urls

DURATION_S: Final = int(os.environ.get("BENCH_GATEWAY_DURATION_S", "15"))
WARMUP_S: Final = int(os.environ.get("BENCH_GATEWAY_WARMUP_S", "3"))
ROUNDS: Final = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "2"))
PROFILE_S: Final = int(os.environ.get("BENCH_GATEWAY_PROFILE_S", "10"))
PROFILE_WARMUP_S: Final = 2
CONNECTIONS: Final = 100
THREADS: Final = 2
DATABASE_URL_ENV: Final = "AIRLOCK_BENCH_DATABASE_URL"
REDIS_URL_ENV: Final = "AIRLOCK_BENCH_REDIS_URL"
CEILING_DATABASE: Final = "gateway_bench_ceiling"
READ_IDS: Final = 10_000

# Each gateway scenario and the ceiling scenario it is held against.
COMPARISONS: Final = {"submit": "ceiling_insert", "status_read": "ceiling_read"}
# Run back to back in a round (ceiling first in odd rounds, the gateway first in even ones).
PAIRS: Final = (("ceiling_insert", "submit"), ("ceiling_read", "status_read"))
REFERENCE_PAIR: Final = ("ceiling_index", "health")
# From the issue: throughput at least 60% of the ceiling's, p99 at most 1.5x, no errors.
MIN_THROUGHPUT_RATIO: Final = 0.6
MAX_P99_RATIO: Final = 1.5

SCENARIOS: Final = {
    "ceiling_insert": "ceiling `POST /insert` (validate, INSERT one row)",
    "ceiling_read": "ceiling `GET /rows/{id}` (primary-key SELECT)",
    "ceiling_index": "ceiling `GET /` (constant JSON)",
    "submit": "gateway `POST /api/v1/requests`, authenticated, rate-limited",
    "status_read": "gateway `GET /api/v1/requests/{id}`, authenticated",
    "health": "gateway `GET /health` (database, Redis, folders, link)",
    "health_live": "gateway `GET /health/live`: framework and servicekit's middleware only",
    "me": "gateway `GET /api/v1/me`: authentication, cached user and profile, one SELECT",
    "submit_replay": "gateway `POST /api/v1/requests` repeating an `Idempotency-Key`: the "
    "whole submit path (rate limit in Redis included) but its one round trip only reads",
}


async def prepare_ceiling_database(server_url: str) -> str:
    """A fresh database with the ceiling's table; its URL."""
    await execute(server_url, f"DROP DATABASE IF EXISTS {CEILING_DATABASE} WITH (FORCE)")
    await execute(server_url, f"CREATE DATABASE {CEILING_DATABASE}")
    url = database_url(server_url, CEILING_DATABASE)
    await execute(url, ceiling_app.CREATE_TABLE)
    return url


async def rows_to_read(url: str, count: int) -> list[uuid.UUID]:
    """Up to `count` ids of stored rows, in random order, the table vacuumed and analysed."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE ceiling_request")
        records = await conn.fetch(
            "SELECT id FROM ceiling_request ORDER BY random() LIMIT $1", count
        )
    finally:
        await conn.close()
    return [record["id"] for record in records]


class Bench:
    """The two servers under test, their databases, the users' tokens and the CPU meter."""

    def __init__(
        self,
        ceiling: RunningServer,
        gateway: RunningServer,
        databases: tuple[str, str],
        tokens: Mapping[uuid.UUID, str],
        meter: CpuMeter,
    ) -> None:
        self.ceiling, self.gateway = ceiling, gateway
        assert gateway.ops_url is not None  # serve_gateway gives it
        self.ops_url = gateway.ops_url
        self.ceiling_database, self.gateway_database = databases
        self.tokens = tokens
        self.meter = meter
        self.runs: dict[str, list[ScenarioRun]] = {}

    def measure(
        self, name: str, url: str, round_number: int, *, seconds: int, warmup_s: int, **options: Any
    ) -> None:
        """One scenario: warm-up (dropped), then the measured run with the CPU it cost."""
        load = dict(connections=CONNECTIONS, threads=THREADS, warmup_s=0, **options)
        if warmup_s > 0:
            run_wrk(url, duration_s=warmup_s, **load)
        gateway = url.startswith(self.gateway.base_url)
        before = read_counters(self.ops_url) if gateway else {}
        queries_before = read_query_buckets(self.ops_url) if gateway else {}
        with self.meter.measure() as cpu:
            result = run_wrk(url, duration_s=seconds, **load)
        moved = _moved(before, read_counters(self.ops_url)) if gateway else {}
        queries = (
            query_times.moved(read_query_buckets(self.ops_url), queries_before) if gateway else {}
        )
        run = ScenarioRun(result, cpu.seconds, round_number, moved, queries)
        self.runs.setdefault(name, []).append(run)
        print(f"  {name} (round {round_number}): {_summary(result)}", flush=True)

    def run_round(self, number: int) -> None:
        """Every pair once, the ceiling first in odd rounds and the gateway in even ones."""
        scenarios = self._round_scenarios(number)
        for pair in (*PAIRS, REFERENCE_PAIR):
            for name in pair if number % 2 else reversed(pair):
                url, options = scenarios[name]()
                self.measure(name, url, number, seconds=DURATION_S, warmup_s=WARMUP_S, **options)

    def _round_scenarios(self, number: int) -> dict[str, Callable[[], tuple[str, dict[str, Any]]]]:
        """Each scenario's URL and wrk options, built when it starts (reads need the rows
        the round's inserts made)."""
        ceiling, gateway = self.ceiling.base_url, self.gateway.base_url
        tokens = list(self.tokens.values())

        def ceiling_reads() -> tuple[str, dict[str, Any]]:
            ids = asyncio.run(rows_to_read(self.ceiling_database, READ_IDS))
            return ceiling, {"requests": [WrkRequest("GET", f"/rows/{i}") for i in ids]}

        def gateway_reads() -> tuple[str, dict[str, Any]]:
            pairs = asyncio.run(sample_requests(self.gateway_database, READ_IDS))
            return gateway, {"requests": status_read_requests(pairs, self.tokens)}

        return {
            "ceiling_insert": lambda: (ceiling, {"requests": ceiling_submit_requests()}),
            "submit": lambda: (gateway, {"requests": gateway_submit_requests(tokens)}),
            "ceiling_read": ceiling_reads,
            "status_read": gateway_reads,
            "ceiling_index": lambda: (f"{ceiling}/", {}),
            "health": lambda: (f"{self.ops_url}/health", {}),
        }

    def profile_variants(self) -> None:
        """Gateway endpoints that do part of a submit's work, to see where its time goes.

        `health_live` (vs `ceiling_index`: servicekit's middleware and metrics), `me` (vs
        `health_live`: authentication and a cached identity, plus one SELECT), and
        `submit_replay` (vs `submit`: everything but the write; vs `status_read`: the body,
        the profile's checks and the rate limit's Redis call).
        """
        gateway = self.gateway.base_url
        tokens = list(self.tokens.values())
        replays = replay_requests(tokens)
        asyncio.run(send_once(gateway, replays, expect=202))
        me = [WrkRequest("GET", "/api/v1/me", {"Authorization": f"Bearer {t}"}) for t in tokens]
        variants: dict[str, tuple[str, dict[str, Any]]] = {
            "health_live": (f"{gateway}/health/live", {}),
            "me": (gateway, {"requests": me}),
            "submit_replay": (gateway, {"requests": replays}),
        }
        for name, (url, options) in variants.items():
            self.measure(name, url, 0, seconds=PROFILE_S, warmup_s=PROFILE_WARMUP_S, **options)


def median_result(runs: Sequence[ScenarioRun]) -> WrkResult:
    """One scenario over its rounds: median rate and percentiles; max, totals, every error."""
    results = [run.result for run in runs]
    statuses: dict[int, int] = {}
    for result in results:
        for status, count in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    error_kinds = ("connect", "read", "write", "status", "timeout")
    return WrkResult(
        requests_per_s=round(median([r.requests_per_s for r in results]), 1),
        p50_ms=median([r.p50_ms for r in results]),
        p90_ms=median([r.p90_ms for r in results]),
        p99_ms=median([r.p99_ms for r in results]),
        max_ms=max(r.max_ms for r in results),
        requests=sum(r.requests for r in results),
        duration_s=round(sum(r.duration_s for r in results), 3),
        errors=WrkErrors(
            **{kind: sum(getattr(r.errors, kind) for r in results) for kind in error_kinds}
        ),
        statuses=dict(sorted(statuses.items())),
        connections=results[0].connections,
        threads=results[0].threads,
    )


def against_ceiling(ours: WrkResult, ceiling: WrkResult) -> dict[str, Any]:
    """Throughput and p99 relative to the ceiling's, and whether the issue's target is met."""
    throughput = ours.requests_per_s / ceiling.requests_per_s
    p99 = ours.p99_ms / ceiling.p99_ms
    return {
        "throughput_ratio": round(throughput, 3),
        "p99_ratio": round(p99, 3),
        "met": throughput >= MIN_THROUGHPUT_RATIO
        and p99 <= MAX_P99_RATIO
        and ours.errors.total == 0,
    }


def cpu_per_request_ms(runs: Sequence[ScenarioRun]) -> dict[str, float]:
    """Each process group's CPU milliseconds per request, over all the runs."""
    requests = sum(run.result.requests for run in runs)
    groups = runs[0].cpu_s.keys()
    return {
        name: round(sum(run.cpu_s[name] for run in runs) * 1000 / requests, 3) for name in groups
    }


def run() -> Path:
    """Run the benchmark; return the report's path."""
    ensure_wrk()  # before any server starts: the hint to install it comes at once
    work = Path(tempfile.mkdtemp(prefix="airlock-gateway-bench-"))
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    code = code_version()  # what the servers about to start will run
    print(
        f"request-gateway: wrk {CONNECTIONS} connections, {THREADS} threads, {ROUNDS} rounds "
        f"of {WARMUP_S} s warm-up + {DURATION_S} s per scenario ...",
        flush=True,
    )
    services = resolve_service_urls(
        os.environ.get(DATABASE_URL_ENV), os.environ.get(REDIS_URL_ENV), work
    )
    try:
        bench, setup = _run_all(services, work)
        if services.postgres is None:
            _drop_databases(services.database_url)
    except BaseException:
        print(f"request-gateway: failed; the servers' logs are kept in {work}")
        raise
    finally:
        services.stop()
    shutil.rmtree(work, ignore_errors=True)
    embedded = services.postgres is not None
    setup["load_avg_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    setup["total_run_s"] = round(time.perf_counter() - started)
    setup["code"] = code
    return _report(bench.runs, setup, embedded=embedded)


def code_version() -> dict[str, Any]:
    """The commit the servers ran, and how many files under services/ and libs/ differ."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "services", "libs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    return {
        "commit": head.stdout.strip() or "unknown",
        "uncommitted": len(changed.stdout.splitlines()),
    }


def _run_all(services: EmbeddedServices, work: Path) -> tuple[Bench, dict[str, Any]]:
    """Both servers up, the users seeded and logged in, every round and variant run."""
    server_url = services.database_url
    databases = (
        asyncio.run(prepare_ceiling_database(server_url)),
        asyncio.run(prepare_gateway_database(server_url)),
    )
    with (
        serve_granian(
            "bench.ceiling_app:create_app",
            env={ceiling_app.DATABASE_URL_ENV: databases[0]},
            log_path=work / "ceiling.log",
        ) as ceiling,
        serve_gateway(
            databases[1],
            services.redis_url,
            data_dir=work / "gateway",
            log_path=work / "gateway.log",
        ) as gateway,
    ):
        seeding = time.perf_counter()
        users = asyncio.run(seed_users(databases[1]))
        tokens = asyncio.run(log_in(gateway.base_url, users))
        setup: dict[str, Any] = {
            "users": len(users),
            "seed_and_login_s": round(time.perf_counter() - seeding, 1),
            "access_token_chars": round(median([len(t) for t in tokens.values()])),
        }
        bench = Bench(ceiling, gateway, databases, tokens, _meter(services, ceiling, gateway))
        for number in range(1, ROUNDS + 1):
            bench.run_round(number)
        if PROFILE_S > 0:
            bench.profile_variants()
    setup["gateway_log_events"] = log_events(work / "gateway.log")
    return bench, setup


def _meter(services: EmbeddedServices, *servers: RunningServer) -> CpuMeter:
    ceiling, gateway = servers
    groups: dict[str, PidSource] = {
        "ceiling": process_group(ceiling.pid),
        "gateway": process_group(gateway.pid),
    }
    if services.postgres is not None:
        groups["postgres"] = process_and_children(services.postgres.pgdata / "postmaster.pid")
    if services.redis is not None:
        groups["redis"] = process_and_children(services.redis.pidfile)
    return CpuMeter(groups)


def _drop_databases(server_url: str) -> None:
    for name in (CEILING_DATABASE, GATEWAY_DATABASE):
        with suppress(asyncpg.PostgresError):
            asyncio.run(execute(server_url, f"DROP DATABASE {name} WITH (FORCE)"))


def _moved(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    moved = {name: value - before.get(name, 0.0) for name, value in after.items()}
    return {name: value for name, value in moved.items() if value}


def _summary(result: WrkResult) -> str:
    statuses = ", ".join(f"{status}: {count:,}" for status, count in result.statuses.items())
    return (
        f"{result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms, errors {result.errors.total} ({statuses})"
    )


def _report(runs: dict[str, list[ScenarioRun]], setup: dict[str, Any], *, embedded: bool) -> Path:
    medians = {name: median_result(scenario_runs) for name, scenario_runs in runs.items()}
    compared = {ours: ceiling for ours, ceiling in COMPARISONS.items() if ours in medians}
    settings = {
        "connections": CONNECTIONS,
        "wrk_threads": THREADS,
        "rounds": ROUNDS,
        "duration_s": DURATION_S,
        "warmup_s": WARMUP_S,
        "profile_s": PROFILE_S,
        "server": f"granian asgi, {WORKERS} workers each: the ceiling with "
        f"{event_loop_note()}, the gateway (`request-gateway serve`, granian embedded) with "
        f"its `Loops.auto`, which is {granian_auto_loop()} here",
        "ceiling_pool_size_per_worker": ceiling_app.POOL_SIZE,
        "database": "Embedded PostgreSQL 16 (pgserver), fsync on"
        if embedded
        else "External PostgreSQL",
        "submit_variants": SUBMIT_VARIANTS,
        "read_ids": READ_IDS,
        "stand_in_token_chars": TOKEN_CHARS,
    }
    return gateway_report.write(
        gateway_report.Figures(
            runs=runs,
            medians=medians,
            comparisons={o: against_ceiling(medians[o], medians[c]) for o, c in compared.items()},
            per_round={
                o: [
                    against_ceiling(mine.result, theirs.result)
                    for mine, theirs in zip(runs[o], runs[c], strict=True)
                ]
                for o, c in compared.items()
            },
            cpu_ms={
                name: cpu_per_request_ms(scenario_runs) for name, scenario_runs in runs.items()
            },
            settings=settings,
            setup=setup,
            descriptions=SCENARIOS,
            ceilings=compared,
            targets={"min_throughput_ratio": MIN_THROUGHPUT_RATIO, "max_p99_ratio": MAX_P99_RATIO},
        )
    )

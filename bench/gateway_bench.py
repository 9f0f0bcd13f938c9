"""Request gateway under HTTP load (wrk, 100 connections), against a same-run ceiling.

The ceiling (bench/ceiling_app.py, under granian with 2 workers like the gateway):

- `ceiling_insert`: `POST /insert`, a msgspec-validated body and one INSERT through an
  asyncpg pool; the bodies rotate through SUBMIT_VARIANTS payloads, each request with its
  own JWT-sized `Authorization` header (ignored), so that wrk does the same work per
  request as in the gateway's authenticated run;
- `ceiling_read`: `GET /rows/{id}`, a primary-key SELECT, over READ_IDS ids of the rows
  the insert run created (VACUUM ANALYZE first);
- `ceiling_index`: `GET /`, a constant JSON body: framework and server alone.

The gateway's own scenarios (`gateway_scenarios`) are not run yet: the gateway is still
being written. To add them, in `run()`: start the gateway with `serve_granian` on the same
database server, seed users and tokens, build the submit and read request lists (one
token per user, `WrkRequest`s), call `gateway_scenarios`, and merge its results; the report
then compares each with its ceiling (see COMPARISONS and TARGETS).

Embedded PostgreSQL and Redis unless AIRLOCK_BENCH_DATABASE_URL (an admin URL) and
AIRLOCK_BENCH_REDIS_URL name servers. BENCH_GATEWAY_DURATION_S (20) and
BENCH_GATEWAY_WARMUP_S (5) set each scenario's measured and warm-up seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Final

import asyncpg
import msgspec

from bench import ceiling_app
from bench.asgi_server import WORKERS, event_loop_note, serve_granian
from bench.harness import write_report
from bench.link_bench import database_url, execute
from bench.wrk import WrkRequest, WrkResult, ensure_wrk, run_wrk
from servicekit.embedded import resolve_service_urls

DURATION_S: Final = int(os.environ.get("BENCH_GATEWAY_DURATION_S", "20"))
WARMUP_S: Final = int(os.environ.get("BENCH_GATEWAY_WARMUP_S", "5"))
CONNECTIONS: Final = 100
THREADS: Final = 2
DATABASE_URL_ENV: Final = "AIRLOCK_BENCH_DATABASE_URL"
REDIS_URL_ENV: Final = "AIRLOCK_BENCH_REDIS_URL"
CEILING_DATABASE: Final = "gateway_bench_ceiling"
SUBMIT_VARIANTS: Final = 1_000
READ_IDS: Final = 10_000
TOKEN_CHARS: Final = 280  # about an authkit access JWT's length
JSON_HEADERS: Final = {"Content-Type": "application/json"}

# Each gateway scenario and the ceiling scenario it is held against.
COMPARISONS: Final = {"submit": "ceiling_insert", "status_read": "ceiling_read"}
# From the issue: throughput at least 60% of the ceiling's, p99 at most 1.5x, no errors.
MIN_THROUGHPUT_RATIO: Final = 0.6
MAX_P99_RATIO: Final = 1.5

SCENARIOS: Final = {
    "ceiling_insert": "ceiling `POST /insert` (validate, INSERT one row)",
    "ceiling_read": "ceiling `GET /rows/{id}` (primary-key SELECT)",
    "ceiling_index": "ceiling `GET /` (constant JSON)",
    "submit": "gateway `POST /api/v1/requests`, authenticated",
    "status_read": "gateway `GET /api/v1/requests/{id}`, authenticated",
    "health": "gateway `GET /health`",
}


def submit_body(number: int) -> str:
    """A submitted request's JSON body (about 100 B), distinct per `number`."""
    payload = {"query": f"quarterly report {number}", "limit": 10, "offset": number % 50}
    return json.dumps({"type": "echo", "payload": payload}, separators=(",", ":"))


def stand_in_token(number: int) -> str:
    """A token-shaped string of a real token's length, for requests nobody authenticates."""
    seed = hashlib.sha256(str(number).encode()).hexdigest()
    return (seed * (TOKEN_CHARS // len(seed) + 1))[:TOKEN_CHARS]


def ceiling_submit_requests() -> list[WrkRequest]:
    """SUBMIT_VARIANTS distinct `POST /insert` requests, each with its own stand-in token."""
    return [
        WrkRequest(
            "POST",
            "/insert",
            {**JSON_HEADERS, "Authorization": f"Bearer {stand_in_token(n)}"},
            submit_body(n),
        )
        for n in range(SUBMIT_VARIANTS)
    ]


def load(url: str, **options: Any) -> WrkResult:
    """One scenario: wrk with the benchmark's connections, threads and durations."""
    return run_wrk(
        url,
        connections=CONNECTIONS,
        threads=THREADS,
        duration_s=DURATION_S,
        warmup_s=WARMUP_S,
        **options,
    )


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


def ceiling_scenarios(base_url: str, database: str) -> dict[str, WrkResult]:
    """The three ceiling scenarios against the ceiling app at `base_url`."""
    results = {"ceiling_insert": load(base_url, requests=ceiling_submit_requests())}
    print(f"  ceiling_insert: {_summary(results['ceiling_insert'])}", flush=True)
    ids = asyncio.run(rows_to_read(database, READ_IDS))
    reads = [WrkRequest("GET", f"/rows/{row_id}") for row_id in ids]
    results["ceiling_read"] = load(base_url, requests=reads)
    print(f"  ceiling_read: {_summary(results['ceiling_read'])}", flush=True)
    results["ceiling_index"] = load(f"{base_url}/")
    print(f"  ceiling_index: {_summary(results['ceiling_index'])}", flush=True)
    return results


def gateway_scenarios(
    base_url: str,
    *,
    submits: Sequence[WrkRequest],
    status_reads: Sequence[WrkRequest],
) -> dict[str, WrkResult]:
    """The gateway's scenarios; not called yet (the gateway is being written).

    `submits`: `POST /api/v1/requests` with a JSON body, each with its user's
    `Authorization: Bearer <token>` (many users, e.g. SUBMIT_VARIANTS entries built with
    `submit_body`); `status_reads`: `GET /api/v1/requests/{id}` of existing requests, each
    with its owner's token (read the ids after the submit run, as the ceiling does).
    """
    results = {"submit": load(base_url, requests=submits)}
    results["status_read"] = load(base_url, requests=status_reads)
    results["health"] = load(f"{base_url}/health")
    return results


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


def run() -> Path:
    """Run the benchmark; return the report's path."""
    ensure_wrk()  # before any server starts: the hint to install it comes at once
    work = Path(tempfile.mkdtemp(prefix="airlock-gateway-bench-"))
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    print(
        f"request-gateway: wrk {CONNECTIONS} connections, {THREADS} threads, "
        f"{WARMUP_S} s warm-up + {DURATION_S} s per scenario ...",
        flush=True,
    )
    services = resolve_service_urls(
        os.environ.get(DATABASE_URL_ENV), os.environ.get(REDIS_URL_ENV), work
    )
    try:
        database = asyncio.run(prepare_ceiling_database(services.database_url))
        with serve_granian(
            "bench.ceiling_app:create_app",
            env={ceiling_app.DATABASE_URL_ENV: database},
            log_path=work / "ceiling.log",
        ) as base_url:
            results = ceiling_scenarios(base_url, database)
        # The gateway's scenarios go here, on the same database server, then:
        # results |= gateway_scenarios(gateway_url, submits=..., status_reads=...)
        if services.postgres is None:
            with suppress(asyncpg.PostgresError):
                asyncio.run(
                    execute(services.database_url, f"DROP DATABASE {CEILING_DATABASE} WITH (FORCE)")
                )
    except BaseException:
        print(f"request-gateway: failed; the servers' logs are kept in {work}")
        raise
    finally:
        services.stop()
    shutil.rmtree(work, ignore_errors=True)
    embedded = services.postgres is not None
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    return _report(results, time.perf_counter() - started, load, embedded=embedded)


def _summary(result: WrkResult) -> str:
    return (
        f"{result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms, errors {result.errors.total}"
    )


def _report(
    results: dict[str, WrkResult], total_s: float, load: dict[str, float], *, embedded: bool
) -> Path:
    comparisons = {
        ours: against_ceiling(results[ours], results[ceiling])
        for ours, ceiling in COMPARISONS.items()
        if ours in results
    }
    figures: dict[str, Any] = {
        "connections": CONNECTIONS,
        "wrk_threads": THREADS,
        "duration_s": DURATION_S,
        "warmup_s": WARMUP_S,
        "server": f"granian asgi, {WORKERS} workers, {event_loop_note()}",
        "ceiling_pool_size_per_worker": ceiling_app.POOL_SIZE,
        "database": "embedded PostgreSQL 16 (pgserver), fsync on" if embedded else "external",
        "scenarios": msgspec.to_builtins(results),
        "against_ceiling": comparisons,
        "targets": {"min_throughput_ratio": MIN_THROUGHPUT_RATIO, "max_p99_ratio": MAX_P99_RATIO},
        "total_run_s": round(total_s),
        "load_avg_1m": load,
    }
    markdown = "\n".join([*_results_section(figures, results), *_notes_section(comparisons)])
    return write_report("request-gateway", figures, markdown)


def _errors_cell(result: WrkResult) -> str:
    errors = result.errors
    kinds = {name: getattr(errors, name) for name in ("connect", "read", "write", "timeout")}
    kinds["4xx/5xx"] = errors.status
    parts = [f"{name} {count:,}" for name, count in kinds.items() if count]
    return f"{errors.total:,} ({', '.join(parts)})" if parts else "0"


def _results_section(figures: dict[str, Any], results: dict[str, WrkResult]) -> list[str]:
    return [
        "# request-gateway under HTTP load",
        "",
        f"wrk, {figures['connections']} connections over {figures['wrk_threads']} threads, "
        f"{figures['warmup_s']} s of warm-up (not recorded) then {figures['duration_s']} s "
        f"per scenario; servers: {figures['server']}; {figures['database']}; wrk shares the "
        f"machine's {os.cpu_count()} vCPUs with the servers and the database. Whole run "
        f"{figures['total_run_s']} s; load average (1 min) {figures['load_avg_1m']['before']} "
        f"before, {figures['load_avg_1m']['after']} after. Reproduce: "
        "`uv run python -m bench request-gateway` "
        "(`BENCH_GATEWAY_DURATION_S`, `BENCH_GATEWAY_WARMUP_S`, `AIRLOCK_BENCH_DATABASE_URL`, "
        "`AIRLOCK_BENCH_REDIS_URL`).",
        "",
        "| scenario | what | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | errors |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {SCENARIOS[name]} | {r.requests_per_s:,.0f} | {r.p50_ms:.1f} | "
            f"{r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.requests:,} | "
            f"{_errors_cell(r)} |"
            for name, r in results.items()
        ],
        "",
        "- errors: wrk's socket errors (connect, read, write), timeouts (no answer within "
        "2 s; left out of the latencies) and responses with a status of 400 or more; every "
        "status seen is in the JSON report.",
        "- `ceiling_insert` sends SUBMIT_VARIANTS (1,000) distinct bodies (~100 B), each "
        f"with a {TOKEN_CHARS}-character stand-in `Authorization` header the ceiling ignores. "
        f"`ceiling_read` reads {READ_IDS:,} rows the insert run stored, in random order, "
        "after a VACUUM ANALYZE.",
        f"- The ceiling app holds one asyncpg pool of {ceiling_app.POOL_SIZE} connections per "
        "worker with asyncpg's defaults (its reset query on every release), decodes bodies "
        "into msgspec structs and jsonb with msgspec.",
        "",
    ]


def _notes_section(comparisons: dict[str, dict[str, Any]]) -> list[str]:
    target = (
        f"Target (from the issue): each gateway scenario at {MIN_THROUGHPUT_RATIO:.0%} or "
        f"more of its ceiling's req/s, p99 no more than {MAX_P99_RATIO}x the ceiling's, "
        "no errors."
    )
    if not comparisons:
        return [
            target,
            "The gateway's scenarios are not run yet (the gateway is being written): this "
            "report holds the ceiling only.",
            "",
            *_closing(),
        ]
    return [
        "| gateway scenario | ceiling | req/s ratio | p99 ratio | target |",
        "|---|---|---|---|---|",
        *[
            f"| {ours} | {COMPARISONS[ours]} | {c['throughput_ratio']:.2f} | "
            f"{c['p99_ratio']:.2f} | {'met' if c['met'] else 'NOT met'} |"
            for ours, c in comparisons.items()
        ],
        "",
        target,
        "",
        *_closing(),
    ]


def _closing() -> list[str]:
    return [
        "This machine has 2 vCPUs shared by wrk, the servers and the database, and its speed "
        "varies by up to 2x within minutes; compare the ratios measured in the same run "
        "rather than absolute figures.",
        "",
    ]

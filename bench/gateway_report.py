"""The request-gateway benchmark's report: every run in JSON, medians, ratios to the
ceiling, and where the CPU went, in Markdown (bench/results/request-gateway.*)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from bench import query_times
from bench.harness import write_report
from bench.wrk import WrkResult

# Differences of server CPU per request between two scenarios, and what they isolate.
STEPS: Final = (
    ("health_live", "ceiling_index", "servicekit's middleware, metrics and headers"),
    ("me", "health_live", "authentication (JWT, cached user and profile) and one SELECT"),
    ("status_read", "ceiling_read", "a status read beyond the ceiling's primary-key read"),
    (
        "submit_replay",
        "status_read",
        "a submit's body, profile checks and GCRA call, beyond a read",
    ),
    ("submit", "submit_replay", "the write (quota upsert and INSERT) beyond the replay's read"),
    ("submit", "ceiling_insert", "a submit beyond the ceiling's insert"),
)
GROUPS: Final = ("server", "postgres", "redis", "wrk", "other")


class ScenarioRun(msgspec.Struct, frozen=True):
    """One measured wrk run and the CPU seconds each process group used meanwhile."""

    result: WrkResult
    cpu_s: dict[str, float]
    round: int  # 0 for the profiling variants
    counters: dict[str, float] = {}  # the gateway's counters (COUNTERS) moved by as much
    query_buckets: query_times.Buckets = {}  # its query-time histogram, moved by as much


@dataclass(frozen=True)
class Figures:
    """Everything the report shows."""

    runs: Mapping[str, Sequence[ScenarioRun]]
    medians: Mapping[str, WrkResult]
    comparisons: Mapping[str, dict[str, Any]]  # gateway scenario → against its ceiling
    per_round: Mapping[str, list[dict[str, Any]]]
    cpu_ms: Mapping[str, dict[str, float]]  # scenario → process group → CPU ms per request
    settings: dict[str, Any]  # what was run, and how
    setup: dict[str, Any]  # what the run found: users, token size, load, time taken
    descriptions: Mapping[str, str]
    ceilings: Mapping[str, str]  # gateway scenario → its ceiling scenario
    targets: dict[str, float]


def write(figures: Figures) -> Path:
    """Write the JSON and Markdown reports; return the Markdown's path."""
    data: dict[str, Any] = {
        **figures.settings,
        **figures.setup,
        "scenarios": msgspec.to_builtins(figures.medians),
        "runs": msgspec.to_builtins(figures.runs),
        "against_ceiling": figures.comparisons,
        "against_ceiling_per_round": figures.per_round,
        "cpu_ms_per_request": figures.cpu_ms,
        "query_times": {name: query_times.rows(b) for name, b in _query_buckets(figures).items()},
        "targets": figures.targets,
    }
    markdown = "\n".join(
        [
            *_results(figures),
            *_ratios(figures),
            *_cpu(figures),
            *_counters(figures),
            *_queries(figures),
            *_notes(figures),
        ]
    )
    return write_report("request-gateway", data, markdown)


def server_of(scenario: str) -> str:
    """The process group that served a scenario."""
    return "ceiling" if scenario.startswith("ceiling_") else "gateway"


def _results(f: Figures) -> list[str]:
    s, setup = f.settings, f.setup
    return [
        "# request-gateway under HTTP load",
        "",
        f"wrk, {s['connections']} connections over {s['wrk_threads']} threads; "
        f"{s['rounds']} rounds, each scenario {s['warmup_s']} s of warm-up (not recorded) then "
        f"{s['duration_s']} s, ceiling and gateway scenarios back to back in pairs (the ceiling "
        "first in round 1, the gateway first in round 2), then the profiling variants once "
        f"({s['profile_s']} s each). Servers: {s['server']}. {s['database']}; the same Redis "
        f"for both. wrk shares the machine's {os.cpu_count()} vCPUs with the servers and the "
        f"database. Whole run {setup['total_run_s']} s; load average (1 min) "
        f"{setup['load_avg_1m']['before']} before, {setup['load_avg_1m']['after']} after. "
        "Reproduce: `uv run python -m bench request-gateway` (`BENCH_GATEWAY_DURATION_S`, "
        "`BENCH_GATEWAY_WARMUP_S`, `BENCH_GATEWAY_ROUNDS`, `BENCH_GATEWAY_PROFILE_S`, "
        "`AIRLOCK_BENCH_DATABASE_URL`, `AIRLOCK_BENCH_REDIS_URL`).",
        "",
        "Medians over the rounds (max: the highest of any round; requests and errors: totals):",
        "",
        "| scenario | what | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | errors | "
        "statuses |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {f.descriptions[name]} | {r.requests_per_s:,.0f} | {r.p50_ms:.1f} | "
            f"{r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.requests:,} | "
            f"{_errors_cell(r)} | {_statuses_cell(r)} |"
            for name, r in f.medians.items()
        ],
        "",
        "Each round (req/s, p99 ms):",
        "",
        "| scenario | " + " | ".join(f"round {n}" for n in range(1, s["rounds"] + 1)) + " |",
        "|---|" + "---|" * s["rounds"],
        *[
            f"| {name} | "
            + " | ".join(
                f"{run.result.requests_per_s:,.0f} ({run.result.p99_ms:.0f})" for run in runs
            )
            + " |"
            for name, runs in f.runs.items()
            if runs[0].round > 0
        ],
        "",
    ]


def _ratios(f: Figures) -> list[str]:
    t = f.targets
    return [
        "## Against the ceiling",
        "",
        "| gateway scenario | ceiling | req/s ratio | p99 ratio | per round (req/s, p99) | "
        "target |",
        "|---|---|---|---|---|---|",
        *[
            f"| {ours} | {f.ceilings[ours]} | {c['throughput_ratio']:.2f} | "
            f"{c['p99_ratio']:.2f} | "
            + ", ".join(
                f"{r['throughput_ratio']:.2f} / {r['p99_ratio']:.2f}" for r in f.per_round[ours]
            )
            + f" | {'met' if c['met'] else 'NOT met'} |"
            for ours, c in f.comparisons.items()
        ],
        "",
        f"Target (from the issue): each gateway scenario at {t['min_throughput_ratio']:.0%} or "
        f"more of its ceiling's req/s, p99 no more than {t['max_p99_ratio']}x the ceiling's, "
        "no errors; the ratios are of the medians. For reference, `health` against "
        "`ceiling_index`: "
        + _plain_ratio(f.medians.get("health"), f.medians.get("ceiling_index"))
        + ".",
        "",
    ]


def _cpu(f: Figures) -> list[str]:
    def cell(scenario: str, group: str) -> str:
        values = f.cpu_ms[scenario]
        return f"{values[server_of(scenario) if group == 'server' else group]:.2f}"

    rows = [
        f"| {name} | " + " | ".join(cell(name, g) for g in GROUPS if g in _groups(f)) + " | "
        f"{_busy_cores(f.runs[name]):.2f} |"
        for name in f.runs
    ]
    steps = [
        f"| {what} | {a} − {b} | "
        + " | ".join(
            f"{_value(f, a, g) - _value(f, b, g):+.2f}"
            for g in ("server", "postgres", "redis")
            if g in _groups(f)
        )
        + " |"
        for a, b, what in STEPS
        if a in f.cpu_ms and b in f.cpu_ms
    ]
    present = [g for g in GROUPS if g in _groups(f)]
    return [
        "## Where the CPU goes",
        "",
        "CPU milliseconds per request, by process group, over the measured seconds of every "
        "run (/proc): `server` is the one under load (granian and its 2 workers); `postgres` "
        "its postmaster and backends; `wrk` the load generator; `other` whatever else the "
        "machine ran meanwhile (other users' processes, kernel softirq for loopback "
        "networking, steal). `busy cores`: the machine's CPU seconds per second.",
        "",
        "| scenario | " + " | ".join(present) + " | busy cores |",
        "|---|" + "---|" * (len(present) + 1),
        *rows,
        "",
        "Differences between scenarios (CPU ms per request), each isolating a part of the "
        "work; with other load on the machine, differences under ~0.15 ms are noise. For a "
        "function-level view of one request's CPU: `python -m bench.gateway_profile "
        "[submit|status_read|me|health_live]` (cProfile, requests sent straight into the app).",
        "",
        "| part | scenarios | "
        + " | ".join(g for g in ("server", "postgres", "redis") if g in present)
        + " |",
        "|---|---|" + "---|" * len([g for g in ("server", "postgres", "redis") if g in present]),
        *steps,
        "",
    ]


def _query_buckets(f: Figures) -> dict[str, query_times.Buckets]:
    """Each gateway scenario's query times, all its runs added up."""
    summed = {
        name: query_times.total(run.query_buckets for run in runs) for name, runs in f.runs.items()
    }
    return {name: buckets for name, buckets in summed.items() if buckets}


def _queries(f: Figures) -> list[str]:
    return [
        "## Database query times under load",
        "",
        "The gateway's `db_query_duration_seconds{query}` (every query its pools run, timed "
        "from the client side: the wait for a connection is not in it, the round trip is), "
        "read before and after each measured run of a gateway scenario, all its runs added up.",
        "",
        *query_times.markdown(_query_buckets(f)),
        "",
    ]


def _counters(f: Figures) -> list[str]:
    rows = []
    for name, runs in f.runs.items():
        totals: dict[str, float] = {}
        for run in runs:
            for counter, value in run.counters.items():
                totals[counter] = totals.get(counter, 0.0) + value
        if not totals:
            continue
        cells = [
            ", ".join(
                f"{counter.split('{', 1)[1].rstrip('}')} {value:,.0f}"
                for counter, value in sorted(totals.items())
                if counter.startswith(family)
            )
            or "-"
            for family in ("rate_limit_decisions", "gateway_identity_cache_lookups")
        ]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return [
        "## The gateway's own counters",
        "",
        "From its `/metrics`, read before and after each measured run (all runs of a "
        "scenario added up). A rate limit decision `failed_open` is a submit let through "
        "uncounted because the GCRA call to Redis did not answer within the limiter's "
        "timeout (`GATEWAY_RATE_LIMIT_TIMEOUT_S`, default 1 s); with "
        "`GATEWAY_RATE_LIMIT_ON_REDIS_ERROR=closed` it would have been "
        "a 503.",
        "",
        "| scenario | rate limit decisions | identity cache lookups |",
        "|---|---|---|",
        *rows,
        "",
    ]


def _notes(f: Figures) -> list[str]:
    s, setup = f.settings, f.setup
    return [
        "## Notes",
        "",
        "- errors: wrk's socket errors (connect, read, write), timeouts (no answer within "
        "2 s; left out of the latencies) and responses with a status of 400 or more; "
        "`statuses` counts every response by status.",
        f"- `ceiling_insert` sends {s['submit_variants']:,} distinct bodies (~100 B), each with "
        f"a {s['stand_in_token_chars']}-character stand-in `Authorization` header the ceiling "
        f"ignores; the gateway's real access tokens are {setup['access_token_chars']} "
        f"characters. `submit` sends the same bodies, rotating through {setup['users']} users' "
        "tokens. Reads, on both sides: up to "
        f"{s['read_ids']:,} rows the round's inserts left, in random order, after a "
        "VACUUM ANALYZE.",
        f"- Users: {setup['users']} users of one profile type (1,000,000 requests a minute, "
        "burst 1,000,000, 10,000,000 pending), applied with the gateway's own sync code "
        "(`apply_profile_types`, `apply_users`) as a user-sync batch would be, then logged in "
        f"through `POST /api/v1/auth/login` ({setup['seed_and_login_s']} s in all). No "
        "`request-gateway worker` runs: submitted requests stay queued, nothing is exported.",
        "- The gateway ran with `GATEWAY_LOG_LEVEL=warning` (its access lines are at info, "
        "so none were written) and `GATEWAY_LOG_FORMAT=json`; its log over the whole run: "
        + (", ".join(f"{n} x `{e}`" for e, n in setup["gateway_log_events"].items()) or "empty")
        + ".",
        "- `health`: each worker runs the checks of the gateway's `/health` at most once a "
        "second (one run answers every probe meanwhile), each within 80 ms and all within "
        "100 ms; it answers 503 when a critical one (database, link folders) misses that, "
        "as can happen on workers saturated by 100 connections. "
        "Otherwise it says `degraded` (still 200): no processor's batch ever arrives here, "
        "so the link is stale.",
        "- The ceiling app holds one asyncpg pool of "
        f"{s['ceiling_pool_size_per_worker']} connections per worker (min = max), the gateway "
        "one of up to 10 per worker (min 1, `servicekit.database.open_pool`); neither runs "
        "asyncpg's reset query on release.",
        f"- Code measured: commit {setup['code']['commit']}"
        + (
            f", with uncommitted changes in {setup['code']['uncommitted']} files under "
            "services/ and libs/ (others' work in progress in the shared tree)"
            if setup["code"]["uncommitted"]
            else ""
        )
        + ".",
        "- This machine has 2 vCPUs shared by wrk, the servers and the database, and other "
        "engineers' tests run on it at the same time: its speed varies by up to 2x within "
        "minutes (see `other` above). Compare the ratios of the same round rather than "
        "absolute figures.",
        "",
    ]


def _groups(f: Figures) -> set[str]:
    first = next(iter(f.cpu_ms.values()))
    return {"server", *first}


def _value(f: Figures, scenario: str, group: str) -> float:
    values = f.cpu_ms[scenario]
    return values[server_of(scenario) if group == "server" else group]


def _busy_cores(runs: Sequence[ScenarioRun]) -> float:
    seconds = sum(run.result.duration_s for run in runs)
    return sum(run.cpu_s["machine"] for run in runs) / seconds


def _plain_ratio(ours: WrkResult | None, theirs: WrkResult | None) -> str:
    if ours is None or theirs is None:
        return "not run"
    return (
        f"{ours.requests_per_s / theirs.requests_per_s:.2f} of its req/s, "
        f"{ours.p99_ms / theirs.p99_ms:.2f}x its p99"
    )


def _errors_cell(result: WrkResult) -> str:
    errors = result.errors
    kinds = {name: getattr(errors, name) for name in ("connect", "read", "write", "timeout")}
    kinds["4xx/5xx"] = errors.status
    parts = [f"{name} {count:,}" for name, count in kinds.items() if count]
    return f"{errors.total:,} ({', '.join(parts)})" if parts else "0"


def _statuses_cell(result: WrkResult) -> str:
    return ", ".join(f"{status}: {count:,}" for status, count in result.statuses.items())

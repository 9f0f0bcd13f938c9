"""Per-query times under a benchmark's load, from `db_query_duration_seconds{query}`.

Every service pool times its queries into that histogram (`servicekit.database`). A benchmark
reads it from a `/metrics` text (summed over the processes it covers) before and after a run;
the difference is the run's. Percentiles are interpolated within the buckets the way
Prometheus's `histogram_quantile` does, so they are as coarse as the buckets (1, 2.5, 5, 10,
25, 50, 100 ms, ...): a p95 of "7.1 ms" means "between 5 and 10 ms, about there".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families

HISTOGRAM: Final = "db_query_duration_seconds"
QUANTILES: Final = (0.5, 0.95, 0.99)
OBJECTIVE_MS: Final = 100.0  # the p95 objective of the AirlockDbQuerySlow alert

# What the names that are not a verb and a table of ours are (servicekit.database.query_name).
NOTES: Final = {
    "with pg_type": "asyncpg introspecting a type the first time a connection meets it "
    "(a new pool connection's first queries)",
    "other": "statements without a table: BEGIN, COMMIT, SET, LISTEN, and the like",
    "select": "a SELECT of no table: a function call or a constant",
}

Buckets = dict[str, dict[str, float]]
"""Query name → bucket upper bound (as Prometheus prints it: "0.005", "+Inf") → cumulative
count. String bounds keep it JSON-ready."""


def read_buckets(text: str) -> Buckets:
    """The histogram's cumulative bucket counts by query, summed over every sample (process)."""
    buckets: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name == f"{HISTOGRAM}_bucket":
                query = buckets.setdefault(sample.labels["query"], {})
                bound = sample.labels["le"]
                query[bound] = query.get(bound, 0.0) + sample.value
    return buckets


def moved(after: Buckets, before: Buckets) -> Buckets:
    """What a run added: `after` minus `before`, queries that ran at all."""
    delta: Buckets = {}
    for query, counts in after.items():
        earlier = before.get(query, {})
        added = {bound: count - earlier.get(bound, 0.0) for bound, count in counts.items()}
        if added.get("+Inf", 0.0) > 0:
            delta[query] = added
    return delta


def total(parts: Iterable[Buckets]) -> Buckets:
    """Several runs' buckets added up."""
    summed: Buckets = {}
    for part in parts:
        for query, counts in part.items():
            into = summed.setdefault(query, {})
            for bound, count in counts.items():
                into[bound] = into.get(bound, 0.0) + count
    return summed


def quantile(q: float, counts: Mapping[str, float]) -> float:
    """The `q` quantile in seconds (Prometheus's interpolation; past the last finite bound:
    that bound, the most the histogram can say)."""
    bounds = sorted((float(bound), count) for bound, count in counts.items())
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in bounds:
        if cumulative >= rank:
            if math.isinf(upper):
                return lower
            inside = cumulative - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, cumulative
    return lower


def rows(buckets: Buckets) -> list[dict[str, Any]]:
    """One row per query, the busiest first: count and p50/p95/p99 in milliseconds."""
    table = []
    for query, counts in buckets.items():
        row: dict[str, Any] = {"query": query, "count": round(counts["+Inf"])}
        for q in QUANTILES:
            row[f"p{round(q * 100)}_ms"] = round(quantile(q, counts) * 1000, 2)
        table.append(row)
    return sorted(table, key=lambda row: -row["count"])


def markdown(by_run: Mapping[str, Buckets], top: int = 10, bulk: Collection[str] = ()) -> list[str]:
    """A table of each run's `top` busiest queries (count and percentiles; the JSON holds
    every query), and whether every query's p95 met the objective (`bulk` statements, which
    carry many records each, judged apart)."""
    lines = [
        "| run | query | count | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    slowest: tuple[float, str, str] = (0.0, "", "")
    left_out = 0
    for run, buckets in by_run.items():
        table = rows(buckets)
        for row in table[:top]:
            lines.append(
                f"| {run} | `{row['query']}` | {row['count']:,} | {row['p50_ms']:.2f} | "
                f"{row['p95_ms']:.2f} | {row['p99_ms']:.2f} |"
            )
        left_out += len(table[top:])
        judged = [row for row in table if row["query"] not in bulk]
        slowest = max(slowest, *((row["p95_ms"], row["query"], run) for row in judged))
    p95, query, run = slowest
    verdict = "met" if p95 < OBJECTIVE_MS else "NOT met"
    apart = (
        f" Judged apart, as bulk statements of many records each: "
        f"{', '.join(f'`{name}`' for name in sorted(bulk))}."
        if bulk
        else ""
    )
    seen = {query for buckets in by_run.values() for query in buckets}
    notes = [f"- `{name}`: {note}." for name, note in NOTES.items() if name in seen]
    return [
        *lines,
        "",
        *([f"{left_out} less frequent queries are in the JSON report."] if left_out else []),
        *notes,
        "",
        f"Objective: every query's p95 under {OBJECTIVE_MS:.0f} ms: {verdict} (the highest: "
        f"`{query}` in {run}, {p95:.2f} ms).{apart} Percentiles are interpolated within the "
        "histogram's buckets (1, 2.5, 5, 10, 25, 50, 100 ms, ...), as Prometheus's "
        "`histogram_quantile` does: read them as the bucket they fall in; those of a query "
        "seen a few times say little.",
    ]

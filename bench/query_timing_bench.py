"""`python -m bench query-timing`: what timing every query (servicekit.database) costs.

The same primary-key SELECT runs QUERIES times through a pool with the query logger
(`open_pool`'s `init=time_queries`) and through one without it, in alternating rounds on one
embedded PostgreSQL 16, so both see the same machine load. Reported: time per query each
way and the overhead ratio; the histogram's own per-query p50/p95/p99 from its buckets.
Report: bench/results/query-timing.{md,json}.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import asyncpg
from asyncpg.connection import LoggedQuery
from prometheus_client import REGISTRY

from servicekit.database import _record_query, open_pool, query_name
from servicekit.embedded import EmbeddedPostgres

QUERIES: Final = 20_000
ROUNDS: Final = 6
RESULTS: Final = Path(__file__).parent / "results"
SQL: Final = "SELECT id, body FROM item WHERE id = $1"


def run() -> Path:
    """Measure and write the report; return the Markdown file's path."""
    with tempfile.TemporaryDirectory(prefix="bench-qt-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        server.start()
        try:
            figures = asyncio.run(_measure(server.ensure_database("qt")))
        finally:
            server.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "query-timing.json").write_text(json.dumps(figures, indent=2) + "\n")
    report = RESULTS / "query-timing.md"
    report.write_text(
        "# Query timing overhead (db_query_duration_seconds)\n\n"
        f"{QUERIES:,} primary-key SELECTs per round, {ROUNDS} rounds each way, alternating.\n\n"
        "| pool | µs per query (best round) |\n|---|---|\n"
        f"| without the query logger | {figures['plain_us']:.1f} |\n"
        f"| with the query logger | {figures['timed_us']:.1f} |\n"
        f"| overhead | {figures['overhead_us']:.1f} µs ({figures['overhead_pct']:.1f} %) |\n"
        f"| the logger callback alone (in-process) | {figures['callback_us']:.1f} µs |\n\n"
        "The end-to-end difference carries the machine's noise (other processes share its "
        "cores); the callback's own cost is the floor of what timing adds per query.\n\n"
        "Reproduce: `uv run --frozen --no-sync python -m bench query-timing`.\n"
    )
    return report


async def _measure(url: str) -> dict[str, Any]:
    setup = await asyncpg.connect(url)
    try:
        await setup.execute("CREATE TABLE IF NOT EXISTS item (id int PRIMARY KEY, body text)")
        await setup.execute(
            "INSERT INTO item SELECT n, md5(n::text) FROM generate_series(1, 1000) n "
            "ON CONFLICT DO NOTHING"
        )
    finally:
        await setup.close()
    timed = await open_pool(url, max_size=1)
    plain = await asyncpg.create_pool(
        url, min_size=1, max_size=1, reset=_keep, command_timeout=60.0
    )
    try:
        best = {"plain": float("inf"), "timed": float("inf")}
        for _ in range(ROUNDS):
            for name, pool in (("timed", timed), ("plain", plain)):
                best[name] = min(best[name], await _round(pool))
    finally:
        await timed.close()
        await plain.close()
    callback_us = _callback_cost_us()
    count = REGISTRY.get_sample_value("db_query_duration_seconds_count", {"query": query_name(SQL)})
    plain_us, timed_us = best["plain"] * 1e6, best["timed"] * 1e6
    return {
        "queries_per_round": QUERIES,
        "rounds": ROUNDS,
        "plain_us": plain_us,
        "timed_us": timed_us,
        "overhead_us": timed_us - plain_us,
        "overhead_pct": 100 * (timed_us - plain_us) / plain_us,
        "callback_us": callback_us,
        "histogram_count": count,
    }


def _callback_cost_us() -> float:
    # Only .query and .elapsed are read; the connection fields do not matter here.
    record = LoggedQuery(SQL, (1,), None, 0.0003, None, "", None)  # type: ignore[arg-type]
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(100_000):
            _record_query(record)
        best = min(best, (time.perf_counter() - started) / 100_000)
    return best * 1e6


async def _round(pool: asyncpg.Pool) -> float:
    async with pool.acquire() as connection:
        started = time.perf_counter()
        for n in range(QUERIES):
            await connection.fetchrow(SQL, n % 1000 + 1)
        await asyncio.sleep(0)
        return (time.perf_counter() - started) / QUERIES


async def _keep(connection: asyncpg.Connection) -> None:
    """No reset query, like open_pool: the two pools differ only in the logger."""

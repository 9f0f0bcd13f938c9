"""`python -m bench migrations`: every migration backwards and forwards again at volume.

Each service's database (embedded PostgreSQL 16, fsync on) is migrated to head and given
REQUESTS requests (1,000 users; server-side INSERT ... SELECT with triggers off, then
ANALYZE), plus what its other hot tables hold at that size. Then, app by app, each migration
after the app's first (the first creates the tables, empty at that moment in any real life)
is reversed one at a time, newest first, then applied again one at a time, with the real
commands (`servicekit.migrations.migrate_back_to` and `migrate_to`, which run Piccolo in a
child process). For each step: its time, and the longest lock it held that blocks writes to
a table (SHARE or stronger), sampled from `pg_locks` every SAMPLE_S on a second connection,
the migration's connections told apart by their `application_name`. A step's time includes
Piccolo's start-up in its child process, measured alone as `baseline` (a step with nothing
to do). Report: bench/results/migrations.{md,json}.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg

from bench.harness import cpu_flags, write_report
from request_gateway.db.piccolo_app import APPS as GATEWAY_APPS
from response_processor.db.piccolo_app import APPS as PROCESSOR_APPS
from servicekit.embedded import EmbeddedPostgres
from servicekit.migrations import app_migrations, migrate, migrate_back_to, migrate_to

REQUESTS: Final = int(os.environ.get("BENCH_MIGRATION_REQUESTS", "1000000"))
SAMPLE_S: Final = 0.005
APPLICATION: Final = "airlock-migration-bench"
# Modes that keep writers out of a table (a plain CREATE INDEX takes SHARE).
BLOCKING: Final = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
LOCKS_SQL: Final = """
    SELECT c.relname, l.mode FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    JOIN pg_class c ON c.oid = l.relation
    WHERE l.locktype = 'relation' AND l.granted AND a.application_name = $1
      AND c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace
      AND l.mode = ANY($2::text[])
"""
GATEWAY_FILL: Final = """
    SET session_replication_role = replica;
    INSERT INTO request (id, user_id, type, payload, status, trace_id, result, created_at,
                         updated_at, exported_at, finished_at, change_seq)
    SELECT gen_random_uuid(), md5((n % 1000)::text)::uuid, 'lookup',
           jsonb_build_object('query', md5(n::text), 'n', n), 'completed', md5(n::text),
           jsonb_build_object('answer', md5((n + 1)::text)),
           now() - make_interval(secs => n), now(), now(), now(), n / 1000
    FROM generate_series(1, {rows}) AS n;
    INSERT INTO user_quota (user_id, pending, change_seq)
    SELECT md5(n::text)::uuid, 0, 1000 FROM generate_series(0, 999) AS n;
"""
PROCESSOR_FILL: Final = """
    SET session_replication_role = replica;
    INSERT INTO request (id, user_id, type, payload, status, trace_id, result, created_at,
                         received_at, started_at, finished_at, attempts)
    SELECT gen_random_uuid(), md5((n % 1000)::text)::uuid, 'lookup',
           jsonb_build_object('query', md5(n::text), 'n', n), 'completed', md5(n::text),
           jsonb_build_object('answer', md5((n + 1)::text)),
           now() - make_interval(secs => n), now() - make_interval(mins => n / 1000),
           now(), now(), 1
    FROM generate_series(1, {rows}) AS n;
    INSERT INTO audit_log (at, actor, action, target, details)
    SELECT now() - make_interval(secs => n), 'user' || (n % 1000), 'login',
           'user:user' || (n % 1000), '{{}}'
    FROM generate_series(1, {rows} / 10) AS n;
"""
SERVICES: Final = {
    "request-gateway": (GATEWAY_APPS, GATEWAY_FILL),
    "response-processor": (PROCESSOR_APPS, PROCESSOR_FILL),
}


@dataclass
class Step:
    """One migration reversed or applied again."""

    service: str
    app: str
    migration: str
    direction: str  # "backwards" or "forwards"
    seconds: float = 0.0
    locks: dict[str, float] = field(default_factory=dict)  # "table (mode)" → seconds held

    @property
    def lock_s(self) -> float:
        """The longest time one table stayed locked against writes (0: none seen)."""
        return max(self.locks.values(), default=0.0)


@dataclass
class LockSampler:
    """Polls the migration's granted table locks: per table, first and last sighting and the
    strongest mode."""

    url: str
    seen: dict[str, list[float]] = field(default_factory=dict)  # table → first, last sighting
    strongest: dict[str, int] = field(default_factory=dict)  # table → index in BLOCKING

    async def run(self, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(self.url)
        try:
            while not stop.is_set():
                now = time.perf_counter()
                for row in await connection.fetch(LOCKS_SQL, APPLICATION, list(BLOCKING)):
                    span = self.seen.setdefault(row["relname"], [now, now])
                    span[1] = now
                    mode = BLOCKING.index(row["mode"])
                    self.strongest[row["relname"]] = max(
                        self.strongest.get(row["relname"], 0), mode
                    )
                await asyncio.sleep(SAMPLE_S)
        finally:
            await connection.close()

    def held(self) -> dict[str, float]:
        """Each lock seen and how long, rounded up by one sampling interval; longest first."""
        spans = {
            f"{table} ({BLOCKING[self.strongest[table]].removesuffix('Lock')})": last
            - first
            + SAMPLE_S
            for table, (first, last) in self.seen.items()
        }
        return dict(sorted(spans.items(), key=lambda item: -item[1]))


async def timed(url: str, step: Step, run: Any) -> Step:
    """Run one migration command while sampling its locks."""
    sampler, stop = LockSampler(url), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    await asyncio.sleep(SAMPLE_S * 2)  # the sampler is connected before the step starts
    started = time.perf_counter()
    try:
        await run
    finally:
        step.seconds = time.perf_counter() - started
        stop.set()
        await sampling
    step.locks = sampler.held()
    return step


async def measure_service(url: str, service: str) -> tuple[list[Step], dict[str, Any]]:
    """Fill the service's database, then every later migration backwards and forwards."""
    apps, fill = SERVICES[service]
    tagged = (
        f"{url}&application_name={APPLICATION}"
        if "?" in url
        else f"{url}?application_name={APPLICATION}"
    )
    await migrate(url, apps)
    connection = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await connection.execute(fill.format(rows=REQUESTS))
        await connection.execute("ANALYZE")
        fill_s = time.perf_counter() - started
        size = await connection.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await connection.close()
    steps: list[Step] = []
    last_app, last_ids = app_migrations(apps[-1])
    baseline = Step(service, last_app, last_ids[-1], "forwards")  # applied already
    await timed(url, baseline, migrate_to(tagged, apps, last_app, last_ids[-1]))
    for module in apps:
        name, ids = app_migrations(module)
        for index in range(len(ids) - 1, 0, -1):
            step = Step(service, name, ids[index], "backwards")
            steps.append(
                await timed(url, step, migrate_back_to(tagged, apps, name, ids[index - 1]))
            )
        for migration in ids[1:]:
            step = Step(service, name, migration, "forwards")
            steps.append(await timed(url, step, migrate_to(tagged, apps, name, migration)))
        print(f"  {service}: {name} done", flush=True)
    setup = {"fill_s": round(fill_s, 1), "database_bytes": size, "baseline_s": baseline.seconds}
    return steps, setup


def run() -> Path:
    """Measure both services; write the report and return the Markdown file's path."""
    print(f"migrations: {REQUESTS:,} requests per service, each migration back and forth ...")
    steps: list[Step] = []
    setups: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-migrations-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        server.start()
        try:
            for service in SERVICES:
                url = server.ensure_database(service.replace("-", "_"))
                measured, setups[service] = asyncio.run(measure_service(url, service))
                steps.extend(measured)
        finally:
            server.stop()
    return _report(steps, setups)


def _report(steps: Sequence[Step], setups: dict[str, dict[str, Any]]) -> Path:
    cpu = cpu_flags()
    longest = max(steps, key=lambda step: step.lock_s)
    figures = {
        "requests": REQUESTS,
        "sample_s": SAMPLE_S,
        "cpu": cpu,
        "setup": setups,
        "steps": [
            {
                **step.__dict__,
                "seconds": round(step.seconds, 3),
                "locks": {key: round(held, 3) for key, held in step.locks.items()},
            }
            for step in steps
        ],
    }
    flags = ", ".join(name for name, on in cpu["flags"].items() if on)
    lines = [
        "# Migrations at volume",
        "",
        f"Each service's database with {REQUESTS:,} requests from 1,000 users (embedded "
        f"PostgreSQL 16, fsync on; CPU: {cpu['model']}, flags {flags}). Every migration after "
        "its app's first is reversed one at a time, newest first, then applied again one at a "
        "time, through `servicekit.migrations` as `migrate --back-to` and `migrate` run them. "
        "Reproduce: `uv run --frozen --no-sync python -m bench migrations` "
        "(`BENCH_MIGRATION_REQUESTS`).",
        "",
        "| service | fill s | database | Piccolo start-up alone s |",
        "|---|---|---|---|",
        *[
            f"| {service} | {s['fill_s']} | {s['database_bytes'] / 2**20:,.0f} MiB | "
            f"{s['baseline_s']:.2f} |"
            for service, s in setups.items()
        ],
        "",
        "| service | app | migration | direction | seconds | write-blocking locks held |",
        "|---|---|---|---|---|---|",
        *[
            f"| {s.service} | {s.app} | {s.migration} | {s.direction} | {s.seconds:.2f} | "
            + (", ".join(f"{key} {held:.3f} s" for key, held in s.locks.items()) or "none seen")
            + " |"
            for s in steps
        ],
        "",
        f"- A step's seconds include Piccolo's start-up in its child process (the table above: "
        "the same command with nothing to do). The lock column is what users feel: for that "
        "long, writes to that table (submits, imports, status changes) wait, and under an "
        "AccessExclusive lock reads wait too. Locks are "
        f"sampled every {SAMPLE_S * 1000:.0f} ms from `pg_locks` (granted, SHARE or "
        "stronger, on tables), so one shorter than that can be missed.",
        f"- The longest: {longest.lock_s:.3f} s "
        f"({longest.service} {longest.app} {longest.migration} {longest.direction}).",
        "- A migration runs in one transaction: every lock it takes is held until it commits. "
        "The rule that keeps a release's migrations safe while the previous release still "
        "runs is in docs/operations.md (expand/contract); long write-blocking locks on "
        "`request` belong in a maintenance window or in `CREATE INDEX CONCURRENTLY` outside "
        "a transaction.",
        "",
    ]
    return write_report("migrations", figures, "\n".join(lines))

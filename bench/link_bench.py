"""Link throughput: a 100,000-record batch exported and imported, against same-run ceilings.

- export: `enqueue` of the records in one transaction (COPY into the outbox), then one
  `export_once` that makes the batch (peer lock, seq, stamping the items), renders it from
  the database, signs it and publishes it;
- import: one `import_once` that claims the batch, verifies it while a handler COPYs the
  requests into a table in the same transaction, records it, queues its ack, and archives it.

Ceilings, in the same run on the same records: a bare asyncpg `copy_records_to_table` of the
request rows (what the import handler does) and of the outbox rows (what `enqueue` does), a
bare `BatchWriter.write_many` / `BatchReader` pass over the same records, and the import's
handler alone over the decoded records (its COPY is most of an import). Each round
runs on fresh databases cloned from a migrated template, on the embedded PostgreSQL unless
AIRLOCK_BENCH_DATABASE_URL names a server (its `postgres` database or any admin URL).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from airlink import Link, LinkService, LinkSettings, enqueue
from airlink.inbox import CHUNK_RECORDS
from airlink.records import ProcessorBusiness, Request, ToProcessor
from batchformat import (
    BatchReader,
    BatchWriter,
    Header,
    TrustedKeys,
    generate_key_pair,
    load_signing_key,
)
from bench.harness import median, own_peak_rss_mb, write_report
from servicekit.database import Connection
from servicekit.migrations import migrate

RECORDS: Final = int(os.environ.get("BENCH_LINK_RECORDS", "100000"))
REPEAT: Final = int(os.environ.get("BENCH_REPEAT", "3"))
TARGET_RECORDS_PER_S: Final = 50_000
DATABASE_URL_ENV: Final = "AIRLOCK_BENCH_DATABASE_URL"
TEMPLATE: Final = "link_bench_template"
REQUEST_COLUMNS: Final = ["id", "user_id", "type", "payload", "created_at", "trace_id"]
BENCH_TABLES: Final = [
    """CREATE TABLE bench_request (
        id uuid PRIMARY KEY, user_id uuid NOT NULL, type text NOT NULL, payload jsonb NOT NULL,
        created_at timestamptz NOT NULL, trace_id text NOT NULL)""",
    "CREATE TABLE bench_outbox_copy (kind text NOT NULL, record json NOT NULL)",
    # What servicekit.audit writes into (each service's migrations create it): the link
    # audits the batches it imports and exports.
    """CREATE TABLE audit_log (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz DEFAULT now(),
        actor_id uuid, actor varchar(64), action varchar(64) NOT NULL, target varchar(200),
        outcome varchar(16) NOT NULL, client_address varchar(64), details jsonb NOT NULL)""",
]
T0: Final = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def requests(count: int) -> list[Request]:
    """Realistic gateway requests (~300 B each as JSON)."""
    return [
        Request(
            id=uuid.UUID(int=i + 1),
            user_id=uuid.UUID(int=i % 977),
            type="documents.search",
            payload={"query": f"quarterly report {i % 1000}", "limit": 10, "offset": i % 50},
            created_at=T0,
            trace_id=f"{i:032x}",
        )
        for i in range(count)
    ]


def bench_header() -> Header:
    """A header for the bare writer and the bare handler."""
    return Header(
        batch_id=uuid.uuid4(),
        source="request-net",
        destination="response-net",
        seq=1,
        created_at=T0,
    )


def request_rows(records: Sequence[Request]) -> list[tuple[Any, ...]]:
    """The rows a service's import handler writes for these requests."""
    encode = msgspec.json.encode
    return [
        (r.id, r.user_id, r.type, encode(r.payload).decode(), r.created_at, r.trace_id)
        for r in records
    ]


class CopyRequests(LinkService[ProcessorBusiness, None, None]):
    """The import's service: COPY each chunk of requests into `bench_request`."""

    inbound_records = ProcessorBusiness

    async def apply(
        self, conn: Connection, records: Sequence[ProcessorBusiness], header: Header
    ) -> None:
        """Insert the chunk in the import's transaction."""
        rows = request_rows(cast("Sequence[Request]", records))  # the gateway sends no cancels
        await conn.copy_records_to_table("bench_request", records=rows, columns=REQUEST_COLUMNS)


BenchLink = Link[ProcessorBusiness, None, None]


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


async def execute(url: str, *statements: str) -> None:
    """Run statements on a fresh connection."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def build_template(server_url: str) -> None:
    """A migrated database with the benchmark's tables, to clone for every round."""
    await execute(server_url, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    await execute(server_url, f"CREATE DATABASE {TEMPLATE}")
    url = database_url(server_url, TEMPLATE)
    await migrate(url, ["airlink.piccolo_app"])
    await execute(url, *BENCH_TABLES)


async def clone(server_url: str, name: str) -> str:
    """A fresh copy of the template."""
    await execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await execute(server_url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return database_url(server_url, name)


def sides(work: Path) -> tuple[LinkSettings, LinkSettings]:
    """Gateway and processor settings sharing one folder: gateway outbox = processor inbox."""
    shared, back = work / "to-processor", work / "to-gateway"
    for folder in (shared, back):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    common: dict[str, Any] = {"max_batch_records": RECORDS}
    gateway = LinkSettings(
        network_id="request-net",
        peer_network_id="response-net",
        outbox_dir=shared,
        inbox_dir=back,
        **common,
    )
    processor = LinkSettings(
        network_id="response-net",
        peer_network_id="request-net",
        outbox_dir=back,
        inbox_dir=shared,
        **common,
    )
    return gateway, processor


async def one_round(server_url: str, work: Path, records: list[Request]) -> dict[str, float]:
    """Time export, import and the ceilings once, on fresh databases and folders."""
    gateway_settings, processor_settings = sides(work)
    gateway_pool = await asyncpg.create_pool(await clone(server_url, "link_bench_gateway"))
    processor_pool = await asyncpg.create_pool(await clone(server_url, "link_bench_processor"))
    keys = work / "keys"
    gateway: BenchLink = Link(
        gateway_pool,
        gateway_settings,
        CopyRequests(),
        signing_key=load_signing_key(keys / "request-net-1.key"),
        peer_keys=TrustedKeys.from_files([keys / "response-net-1.pub"]),
    )
    processor: BenchLink = Link(
        processor_pool,
        processor_settings,
        CopyRequests(),
        signing_key=load_signing_key(keys / "response-net-1.key"),
        peer_keys=TrustedKeys.from_files([keys / "request-net-1.pub"]),
    )
    try:
        times = await _timed_link(gateway, processor, gateway_pool, records)
        times.update(await _timed_ceilings(processor_pool, work, records))
    finally:
        gateway.close()
        processor.close()
        await gateway_pool.close()
        await processor_pool.close()
    return times


async def _timed_link(
    gateway: BenchLink, processor: BenchLink, gateway_pool: asyncpg.Pool[Any], records: list[Any]
) -> dict[str, float]:
    await gateway.export_once(T0)  # the first heartbeat, out of the way
    await processor.import_once(T0)
    started = time.perf_counter()
    async with gateway_pool.acquire() as conn, conn.transaction():
        await enqueue(conn, records)
    enqueued = time.perf_counter()
    report = await gateway.export_once(T0)
    exported = time.perf_counter()
    assert [b.record_count for b in report.batches] == [len(records)]
    imported_report = await processor.import_once(T0)
    imported = time.perf_counter()
    assert [(b.outcome, b.records) for b in imported_report.batches] == [("applied", len(records))]
    return {
        "enqueue": enqueued - started,
        "export_once": exported - enqueued,
        "export": exported - started,
        "import": imported - exported,
    }


async def _timed_ceilings(
    pool: asyncpg.Pool[Any], work: Path, records: list[Request]
) -> dict[str, float]:
    rows = request_rows(records)
    encoder = msgspec.json.Encoder(order="deterministic")
    outbox_rows = [("request", encoder.encode(r).decode()) for r in records]
    times: dict[str, float] = {}
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE bench_request")
        started = time.perf_counter()
        await conn.copy_records_to_table("bench_request", records=rows, columns=REQUEST_COLUMNS)
        times["bare_copy_requests"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.copy_records_to_table("bench_outbox_copy", records=outbox_rows)
        times["bare_copy_outbox_rows"] = time.perf_counter() - started
        await conn.execute("TRUNCATE bench_request")
        handler = CopyRequests()
        started = time.perf_counter()
        async with conn.transaction():
            for start in range(0, len(records), CHUNK_RECORDS):
                await handler.apply(conn, records[start : start + CHUNK_RECORDS], bench_header())
        times["bare_handler"] = time.perf_counter() - started
    times.update(await asyncio.to_thread(_timed_file_ceilings, work, records))
    return times


def _timed_file_ceilings(work: Path, records: list[Request]) -> dict[str, float]:
    folder = work / "bare"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    header = Header(
        batch_id=uuid.uuid4(),
        source="request-net",
        destination="response-net",
        seq=1,
        created_at=T0,
    )
    key = load_signing_key(work / "keys" / "request-net-1.key")
    started = time.perf_counter()
    with BatchWriter(folder, header, key) as writer:
        writer.write_many(records)
    path = writer.publish().path
    written = time.perf_counter()
    trusted = TrustedKeys.from_files([work / "keys" / "request-net-1.pub"])
    count = sum(1 for _ in BatchReader(path, trusted, ToProcessor).records())
    read = time.perf_counter()
    assert count == len(records)
    return {"bare_batch_write": written - started, "bare_batch_read": read - written}


async def measure(server_url: str, work: Path) -> list[dict[str, float]]:
    """Build the template, then run REPEAT rounds."""
    await build_template(server_url)
    records = requests(RECORDS)
    # The fixture (100,000 records and their payload dicts) lives for the whole run; frozen,
    # the cyclic collector stops re-scanning it at every full collection, a cost that would
    # otherwise be charged to whichever step happened to trigger one.
    gc.freeze()
    rounds = []
    try:
        for number in range(REPEAT):
            rounds.append(await one_round(server_url, work, records))
            print(f"  round {number + 1}/{REPEAT} done", flush=True)
    finally:
        for name in (TEMPLATE, "link_bench_gateway", "link_bench_processor"):
            with suppress(asyncpg.PostgresError):
                await execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return rounds


def run() -> Path:
    """Run the benchmark; return the report's path."""
    from servicekit.embedded import EmbeddedPostgres

    work = Path(tempfile.mkdtemp(prefix="airlock-link-bench-"))
    server: EmbeddedPostgres | None = None
    try:
        for key_id in ("request-net-1", "response-net-1"):
            generate_key_pair(key_id, work / "keys")
        server_url = os.environ.get(DATABASE_URL_ENV)
        if server_url is None:
            server = EmbeddedPostgres(work)
            server_url = server.start()
        print(f"link: {REPEAT} rounds of a {RECORDS:,}-record batch ...", flush=True)
        rounds = asyncio.run(measure(server_url, work))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return _report(rounds, embedded=server is not None)


def _report(rounds: list[dict[str, float]], *, embedded: bool) -> Path:
    names = list(rounds[0])
    seconds = {name: median([r[name] for r in rounds]) for name in names}
    rates = {name: round(RECORDS / s) for name, s in seconds.items()}
    ceilings = {
        "export_vs_copy_plus_write": ("export", ("bare_copy_outbox_rows", "bare_batch_write")),
        "import_vs_read_plus_copy": ("import", ("bare_batch_read", "bare_copy_requests")),
        "import_vs_read_plus_handler": ("import", ("bare_batch_read", "bare_handler")),
    }

    def ratio(ours: str, parts: tuple[str, ...]) -> float:
        # Per-round ratios cancel the machine's slow spells; the median of them is reported.
        return round(median([sum(r[p] for p in parts) / r[ours] for r in rounds]), 3)

    ratios = {name: ratio(ours, parts) for name, (ours, parts) in ceilings.items()}
    met = {name: rates[name] >= TARGET_RECORDS_PER_S for name in ("export", "import")}
    figures: dict[str, Any] = {
        "records": RECORDS,
        "rounds": len(rounds),
        "database": "embedded PostgreSQL 16 (pgserver), fsync on" if embedded else "external",
        "seconds_median": {name: round(s, 3) for name, s in seconds.items()},
        "records_per_s": rates,
        "ratios": ratios,
        "targets": {
            "records_per_s_min": TARGET_RECORDS_PER_S,
            **{f"{k}_met": v for k, v in met.items()},
        },
        "peak_rss_mb": round(own_peak_rss_mb(), 1),
    }
    rows = [f"| {name} | {seconds[name]:.3f} | {rates[name]:,} |" for name in names]
    verdict = {name: "met" if ok else "NOT met" for name, ok in met.items()}
    markdown = _markdown(figures, rows, ratios, verdict)
    return write_report("link", figures, markdown)


def _markdown(
    figures: dict[str, Any], rows: list[str], ratios: dict[str, float], verdict: dict[str, str]
) -> str:
    """The report's text: the table of steps, the ratios and the verdict."""
    rounds = figures["rounds"]
    return "\n".join(
        [
            "# link throughput",
            "",
            f"One batch of {RECORDS:,} gateway requests (~300 B each), from the gateway's outbox "
            "table to the processor's table, on",
            f"{figures['database']}; {rounds} rounds on fresh databases, medians reported. "
            "Reproduce: `make bench` (or `uv run python -m bench link`; `BENCH_LINK_RECORDS`, "
            "`BENCH_REPEAT`, `AIRLOCK_BENCH_DATABASE_URL`).",
            "",
            "| step | seconds | records/s |",
            "|---|---|---|",
            *rows,
            "",
            "- `export` = `enqueue` (each record checked against its struct in a thread, "
            "streamed by COPY into `link_outbox_item`, one transaction) + `export_once` (lock "
            "the peer row, allocate the seq, take slices of pending groups, render from the "
            "database, sign, fsync, publish).",
            "- `import` = `import_once`: claim, verify while a handler COPYs each 5,000-record "
            "chunk into a table, record the batch, queue its ack, commit, archive.",
            "- ceilings: `bare_copy_outbox_rows` and `bare_copy_requests` (asyncpg "
            "`copy_records_to_table` of the same rows, prepared beforehand), `bare_batch_write` "
            "and `bare_batch_read` (BatchWriter / BatchReader over the same records), and "
            "`bare_handler` (the import's handler alone: building the rows from decoded records "
            "and COPYing them, 5,000 at a time, in one transaction).",
            "",
            "| ratio (median of per-round ratios) | value |",
            "|---|---|",
            *[f"| {name} | {value:.2f} |" for name, value in ratios.items()],
            "",
            "The export does more than its ceilings: it checks every record against its "
            "struct (what the peer's decoder will demand) and reads the batch back from the "
            "database to render it, so that any later rendering is the same bytes.",
            "The benchmark's own 100,000-record fixture is frozen out of the garbage "
            "collector (`gc.freeze()`), so that its rescans are not charged to the step that "
            "triggers them.",
            "",
            f"Target: {TARGET_RECORDS_PER_S:,} records/s or more each way: export "
            f"{verdict['export']}, import {verdict['import']}. A ratio is the time the bare "
            "steps take divided by the link's time for the same work (1.0 = no overhead). "
            "This machine has 2 vCPUs shared with other work and its speed varies by up to 2x "
            "within minutes; compare ratios rather than absolute figures.",
            "",
        ]
    )

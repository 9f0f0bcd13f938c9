"""`python -m bench capacity`: the bytes one request leaves in each store, and what that is
per day at 1,000 requests a minute (docs/deployment.md, "Capacity").

Measured with the real parts on embedded PostgreSQL 16: REQUESTS requests (~300 B of JSON
each, `documents.search`) signed into the processor's inbox as the gateway sends them,
imported by the processor's own link, answered (~300 B results) and exported back; the
gateway's database filled with the same number of completed requests (its schema, its
columns) the way restore-drill does. For each store: the drop zones' batch files each way
(the archives keep the same files), each database's growth (tables, indexes, TOAST, after
VACUUM), a backup of each (`pg_dump -Fc` through servicekit.backup), and the log lines a
request writes (rendered by servicekit.logs, the services' own JSON pipeline).
Report: bench/results/capacity.{md,json}.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Final

import asyncpg
import structlog

from airlink.outbox import enqueue
from bench.harness import cpu_flags, write_report
from bench.link_bench import database_url, execute, requests
from bench.processor_bench import Servers, build_template, clone, processor_settings, responses
from bench.restore_drill_bench import FILL as GATEWAY_FILL
from request_gateway.runtime import prepare_database as prepare_gateway_database
from response_processor.runtime import open_runtime
from response_processor.testing import FakeGateway
from servicekit.backup import backup, format_size
from servicekit.embedded import resolve_service_urls
from servicekit.logs import configure_logging

REQUESTS: Final = int(os.environ.get("BENCH_CAPACITY_REQUESTS", "100000"))
PER_DAY: Final = 1000 * 60 * 24  # 1,000 requests a minute
RETENTION_DAYS: Final = 30  # the archives', the requests' and the dumps' default retention
DUMPS_KEPT: Final = 24 * RETENTION_DAYS  # hourly dumps, each kept 30 days
ANSWER_SQL: Final = """
    UPDATE request SET status = 'completed', attempts = 1, started_at = now(),
        finished_at = now(),
        result = jsonb_build_object('total', 3, 'hits', jsonb_build_array(
            jsonb_build_object('title', 'Quarterly report ' || md5(id::text), 'score', 0.9)))
"""


async def _database_bytes(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("VACUUM ANALYZE")
        size: int = await connection.fetchval("SELECT pg_database_size(current_database())")
        return size
    finally:
        await connection.close()


async def _wal_position(url: str) -> int:
    """The server's WAL insert position, in bytes."""
    connection = await asyncpg.connect(url)
    try:
        position: int = await connection.fetchval(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"
        )
        return position
    finally:
        await connection.close()


async def _dump_bytes(url: str, folder: Path, name: str) -> int:
    made = await backup(url, folder / f"{name}.dump", prefer_path=False)
    return made.size_bytes


async def processor_side(servers: Servers, work: Path) -> dict[str, int]:
    """Requests in, answered, answers out, through the processor's own link."""
    await build_template(servers, work)
    url = await clone(servers, "capacity_processor")
    settings = processor_settings(work / "processor", url, servers.redis)
    gateway = FakeGateway(settings)
    async with open_runtime(settings) as runtime:
        await runtime.link.import_once()  # first passes (peer rows, folders) out of the way
        await runtime.link.export_once()
        empty = await _database_bytes(url)
        wal_from = await _wal_position(url)
        batch = await asyncio.to_thread(gateway.send, requests(REQUESTS))
        inbound = batch.stat().st_size
        await runtime.link.import_once()
        await runtime.redis.flushdb()  # the jobs: the requests are answered below instead
        async with runtime.pool.acquire() as conn, conn.transaction():
            await conn.execute(ANSWER_SQL)
            await enqueue(conn, responses(REQUESTS))
        before = set(settings.outbox_path.glob("*.jsonl"))
        await runtime.link.export_once()
        made = set(settings.outbox_path.glob("*.jsonl")) - before
        outbound = sum(path.stat().st_size for path in made)
        wal = await _wal_position(url) - wal_from
        grown = await _database_bytes(url) - empty
        dump = await _dump_bytes(url, work, "processor")
    return {
        "inbound_batch": inbound,
        "outbound_batch": outbound,
        "database": grown,
        "wal": wal,
        "dump": dump,
    }


async def gateway_side(servers: Servers, work: Path) -> dict[str, int]:
    """The gateway's database with as many completed requests, and its backup."""
    await execute(servers.postgres, "DROP DATABASE IF EXISTS capacity_gateway WITH (FORCE)")
    await execute(servers.postgres, "CREATE DATABASE capacity_gateway")
    url = database_url(servers.postgres, "capacity_gateway")
    await prepare_gateway_database(url)
    empty = await _database_bytes(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SET session_replication_role = replica")
        await connection.execute(GATEWAY_FILL, REQUESTS)
    finally:
        await connection.close()
    grown = await _database_bytes(url) - empty
    return {"database": grown, "dump": await _dump_bytes(url, work, "gateway")}


def log_lines() -> dict[str, int]:
    """The lines one request writes, rendered by the services' own JSON log pipeline."""
    sizes = {}
    for service, logger, event, fields in (
        ("request-gateway", "servicekit.access", "request",
         {"method": "POST", "route": "/api/v1/requests", "status": 202, "duration_ms": 12.31}),
        ("request-gateway", "servicekit.access", "request",
         {"method": "GET", "route": "/api/v1/requests/{request_id:uuid}", "status": 200,
          "duration_ms": 3.07}),
        ("response-processor", "response_processor.jobs", "request_completed",
         {"trace_id": uuid.uuid4().hex, "type": "documents.search", "attempt": 1}),
    ):  # fmt: skip
        stream = io.StringIO()
        configure_logging(service, json=True, stream=stream)
        structlog.get_logger(logger).info(event, request_id=uuid.uuid4().hex, **fields)
        sizes[f"{service}: {event} {fields.get('method', '')}".strip()] = len(stream.getvalue())
    configure_logging("capacity-bench", json=False, level="WARNING")
    return sizes


def run() -> Path:
    """Measure; write the report and return the Markdown file's path."""
    print(f"capacity: {REQUESTS:,} requests through each store ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        work = Path(tmp)
        services = resolve_service_urls(None, None, work / "servers")
        try:
            servers = Servers(services.database_url, services.redis_url)
            processor = asyncio.run(processor_side(servers, work))
            gateway = asyncio.run(gateway_side(servers, work))
        finally:
            services.stop()
    logs = log_lines()
    return _report(processor, gateway, logs)


def _report(processor: dict[str, int], gateway: dict[str, int], logs: dict[str, int]) -> Path:
    day = PER_DAY / REQUESTS  # one measured run scaled to a day's requests
    batches = processor["inbound_batch"] + processor["outbound_batch"]
    # (store, bytes per request, bytes held at the default retention, how long it is kept)
    stores: list[tuple[str, float, float | None, str]] = [
        ("batch files, gateway → processor", processor["inbound_batch"] / REQUESTS, None,
         "in flight only (each drop zone on the way), unless the agent keeps SOURCE/sent/"),
        ("batch files, processor → gateway", processor["outbound_batch"] / REQUESTS, None,
         "in flight only, as above"),
        ("inbox archives (both sides)", batches / REQUESTS, batches * day * RETENTION_DAYS,
         "`*_RETENTION_DAYS`, 30 days"),
        ("gateway database", gateway["database"] / REQUESTS,
         gateway["database"] * day * RETENTION_DAYS, "request retention, 30 days"),
        ("processor database", processor["database"] / REQUESTS,
         processor["database"] * day * RETENTION_DAYS, "request retention, 30 days"),
        ("processor WAL archive (import, answer, export)", processor["wal"] / REQUESTS,
         processor["wal"] * day * RETENTION_DAYS,
         "until the oldest kept base backup's start (airlock-base-backup), 30 days"),
        ("gateway backups (dumps)", gateway["dump"] / REQUESTS,
         gateway["dump"] * day * RETENTION_DAYS * DUMPS_KEPT,
         "hourly, `--keep-days 30`: 720 dumps of 30 days' rows"),
        ("processor backups (dumps)", processor["dump"] / REQUESTS,
         processor["dump"] * day * RETENTION_DAYS * DUMPS_KEPT, "as above"),
        ("logs (a submit, a status read, the job)", sum(logs.values()), None,
         "as journald or the container log driver rotates"),
    ]  # fmt: skip
    cpu = cpu_flags()
    figures: dict[str, Any] = {
        "requests": REQUESTS,
        "requests_per_day": PER_DAY,
        "processor": processor,
        "gateway": gateway,
        "log_line_bytes": logs,
        "bytes_per_request": {name: round(value, 1) for name, value, _, _ in stores},
        "bytes_held": {name: held for name, _, held, _ in stores if held is not None},
        "cpu": cpu,
    }
    lines = [
        "# Capacity: bytes per request in each store",
        "",
        f"{REQUESTS:,} requests (~300 B of JSON each) and their answers (~300 B), through the "
        "real processor link and into each database (embedded PostgreSQL 16; "
        f"CPU {cpu['model']}). Per day: at 1,000 requests a minute ({PER_DAY:,} a day). "
        "Reproduce: `uv run --frozen --no-sync python -m bench capacity` "
        "(`BENCH_CAPACITY_REQUESTS`).",
        "",
        "| store | bytes per request | per day at 1,000/min | held at the default retention "
        "| kept |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {value:,.0f} | {format_size(round(value * PER_DAY))} | "
            f"{format_size(round(held)) if held is not None else '-'} | {kept} |"
            for name, value, held, kept in stores
        ],
        "",
        "- Databases: growth after `VACUUM ANALYZE`, tables, indexes and TOAST, the link's "
        "bookkeeping rows included (the processor's outbox items are removed once "
        "acknowledged). Encrypted batches (the default) are 0.3 % larger than these plain "
        "ones (bench/results/crypto.md).",
        "- Backups: a custom-format dump is compressed, but hourly dumps kept 30 days are 720 "
        "copies of a database holding 30 days of requests: by far the largest store at the "
        "defaults. Where the WAL archive and daily base backups run (point-in-time recovery "
        "to any moment in their 30 days), keep the dumps a day or two (`--keep-days 2`): "
        f"{format_size(round(gateway['dump'] * day * RETENTION_DAYS * 48))} for the gateway's "
        "at 48 dumps.",
        "- WAL: what the processor's server wrote for the import, the answers and the export, "
        "as the archive receives it. With `archive_timeout = 60` a server archives a 16 MB "
        "segment at least every minute even when idle (about 23 GB a day, mostly zeros): "
        "compress in `archive_command` (`gzip < %p > ARCHIVE/%f.gz`, and `gunzip` in "
        "`restore_command`) where that matters.",
        "- Log lines: "
        + "; ".join(f"{name} {size} B" for name, size in logs.items())
        + " (at info; the access lines of status polling add one line per poll).",
        "",
    ]
    return write_report("capacity", figures, "\n".join(lines))

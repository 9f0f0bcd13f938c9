"""Response processor: import and export of 100,000 records, and jobs through `echo`.

- import: one `runtime.link.import_once()` of a 100,000-request batch that the tests'
  `FakeGateway` signed into the inbox: claim, verify, the processor's inbound handler
  (INSERT ... SELECT unnest per 5,000-record chunk), record, ack, commit, archive. Its
  after-import hook, which queues one arq job per new request, is timed apart as
  `queueing_jobs`;
- export: `enqueue` of 100,000 responses in one transaction, then one `export_once` making
  and publishing batches of the processor's `max_batch_records` (10,000 by default);
- jobs: BENCH_PROCESSOR_JOBS `echo` requests imported with their jobs queued; the queue is
  set aside (renamed) while 1 or 2 `response-processor worker` processes start, and put
  back once each worker's start-up pass is over; timed until the database has every request
  `completed`. Start-up (spawn until the worker's first reconciliation pass is done) is
  reported apart.

Ceilings, in the same round: asyncpg `copy_records_to_table` of the same rows into the
processor's `request` and `link_outbox_item` tables, the inbound handler alone over decoded
records, a bare BatchReader of the imported batch and bare BatchWriters of the responses;
for jobs, bare arq worker processes running a no-op job with the processor's arq settings.

Embedded PostgreSQL and Redis unless AIRLOCK_BENCH_DATABASE_URL (an admin URL) and
AIRLOCK_BENCH_REDIS_URL name servers; the Redis database given is flushed between runs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import msgspec
import redis.asyncio
from arq import ArqRedis, Worker, create_pool
from arq.connections import RedisSettings
from arq.constants import default_queue_name
from arq.worker import func

from airlink import enqueue
from airlink.inbox import CHUNK_RECORDS, ImportReport
from airlink.records import Request, Response, ToProcessor
from airlink.runner import Link
from batchformat import BatchReader, BatchWriter, Header, TrustedKeys, load_signing_key
from bench.harness import median, own_peak_rss_mb, write_report
from bench.link_bench import T0, database_url, execute, requests
from response_processor.domain import audit
from response_processor.domain.bootstrap import prepare_database
from response_processor.domain.users import UserIn, create_user
from response_processor.link.inbound import ProcessorInbound
from response_processor.processing.worker import POLL_DELAY_S
from response_processor.runtime import open_runtime
from response_processor.settings import PREFIX, ProcessorSettings
from servicekit.embedded import resolve_service_urls
from servicekit.logs import configure_logging
from servicekit.metrics import MULTIPROCESS_ENV
from servicekit.redis_url import parse_redis_url
from tests.response_processor.linkside import FakeGateway, request

RECORDS: Final = int(os.environ.get("BENCH_PROCESSOR_RECORDS", "100000"))
JOBS: Final = int(os.environ.get("BENCH_PROCESSOR_JOBS", "3000"))
REPEAT: Final = int(os.environ.get("BENCH_REPEAT", "3"))
WORKER_COUNTS: Final = (1, 2)
CONCURRENCY: Final = ProcessorSettings().worker_concurrency
BATCH_RECORDS: Final = ProcessorSettings().max_batch_records
TARGET_RECORDS_PER_S: Final = 50_000
DATABASE_URL_ENV: Final = "AIRLOCK_BENCH_DATABASE_URL"
REDIS_URL_ENV: Final = "AIRLOCK_BENCH_REDIS_URL"
TEMPLATE: Final = "processor_bench_template"
DATABASES: Final = (TEMPLATE, "processor_bench_link", "processor_bench_ceiling", "processor_bench_jobs")
BENCH_USER: Final = UserIn("bench-user", "benchmark user password 2026", ["user"], "standard")
HELD_QUEUE: Final = "processor_bench:held"
NOOP_JOB: Final = "noop"
WORKER_COMMAND: Final = Path(sys.executable).parent / "response-processor"
POLL_S: Final = 0.02
READY_TIMEOUT_S: Final = 120.0
DRAIN_TIMEOUT_S: Final = 600.0
STOP_TIMEOUT_S: Final = 30.0
REQUEST_COLUMNS: Final = ("id", "user_id", "type", "payload", "trace_id", "created_at")
ITEM_COLUMNS: Final = ("group_id", "position", "kind", "record")
UNFINISHED_SQL: Final = "SELECT count(*) FROM request WHERE status IN ('received', 'processing')"


@dataclass(frozen=True)
class Servers:
    """The PostgreSQL server (its admin URL) and the Redis database the rounds use."""

    postgres: str
    redis: str


def responses(count: int) -> list[Response]:
    """Responses the size of the gateway's requests (~300 B each as JSON)."""
    return [
        Response(
            request_id=uuid.UUID(int=i + 1),
            status="completed",
            result={"query": f"quarterly report {i % 1000}", "limit": 10, "offset": i % 50},
            error=None,
            finished_at=T0,
            trace_id=f"{i:032x}",
        )
        for i in range(count)
    ]


def processor_settings(data_dir: Path, database: str, redis_url: str) -> ProcessorSettings:
    """The processor's defaults, on the benchmark's servers and folder."""
    password_file = data_dir / "admin-password"
    data_dir.mkdir(parents=True, exist_ok=True)
    password_file.write_text("benchmark admin password 2026\n")
    return ProcessorSettings(
        data_dir=data_dir,
        database_url=database,
        redis_url=redis_url,
        admin_password_file=password_file,
        log_format="json",
    )


async def build_template(servers: Servers, work: Path) -> None:
    """A migrated, bootstrapped database with the benchmark's user, cloned for every run."""
    await execute(servers.postgres, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    await execute(servers.postgres, f"CREATE DATABASE {TEMPLATE}")
    url = database_url(servers.postgres, TEMPLATE)
    await prepare_database(url, processor_settings(work / "template", url, servers.redis))
    conn = await asyncpg.connect(url)
    try:
        await create_user(conn, BENCH_USER, audit.SYSTEM)
    finally:
        await conn.close()


async def clone(servers: Servers, name: str) -> str:
    """A fresh copy of the template."""
    await execute(servers.postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await execute(servers.postgres, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return database_url(servers.postgres, name)


async def link_round(
    servers: Servers, data_dir: Path, records: list[Request], answers: list[Response]
) -> dict[str, float]:
    """Time import, queueing, export and their ceilings once, on fresh databases."""
    url = await clone(servers, "processor_bench_link")
    settings = processor_settings(data_dir, url, servers.redis)
    gateway = FakeGateway(settings)
    async with open_runtime(settings) as runtime:
        await runtime.link.import_once()  # first passes (peer rows, folders) out of the way,
        await runtime.link.export_once()  # with the template's users and profile types
        batch = await asyncio.to_thread(gateway.send, records)
        hook_seconds = _time_after_import(runtime.link)
        started = time.perf_counter()
        report = await runtime.link.import_once()
        imported = time.perf_counter() - started
        assert [(b.outcome, b.records) for b in report.batches] == [("applied", len(records))]
        assert await runtime.arq.zcard(default_queue_name) == len(records)
        await runtime.redis.flushdb()
        times = {
            "import": imported - hook_seconds[0],
            "queueing_jobs": hook_seconds[0],
            "import_with_queueing": imported,
            **await _timed_export(runtime.link, runtime.pool, answers),
        }
    times.update(await _timed_database_ceilings(servers, records, answers))
    archived = settings.inbox_path / "archive" / batch.name
    times.update(await asyncio.to_thread(_timed_file_ceilings, settings, archived, answers))
    await asyncio.to_thread(shutil.rmtree, data_dir)
    return times


def _time_after_import(link: Link[Any]) -> list[float]:
    """Wrap the hook the runtime gave its link, so that its time is told apart from the pass's."""
    hook = link._after_import
    assert hook is not None
    spent: list[float] = []

    async def timed(report: ImportReport) -> None:
        started = time.perf_counter()
        await hook(report)
        spent.append(time.perf_counter() - started)

    link._after_import = timed
    return spent


async def _timed_export(
    link: Link[Any], pool: asyncpg.Pool[Any], answers: list[Response]
) -> dict[str, float]:
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, answers)
    enqueued = time.perf_counter()
    report = await link.export_once()
    exported = time.perf_counter()
    # The ack of the gateway's batch rides along once due: one record more.
    assert sum(b.record_count for b in report.of_kind("new")) in (len(answers), len(answers) + 1)
    return {"enqueue": enqueued - started, "export_once": exported - enqueued, "export": exported - started}


async def _timed_database_ceilings(
    servers: Servers, records: list[Request], answers: list[Response]
) -> dict[str, float]:
    """COPY of the same rows into the same tables, and the inbound handler alone."""
    encode = msgspec.json.Encoder(order="deterministic").encode
    request_rows = [
        (r.id, r.user_id, r.type, encode(r.payload).decode(), r.trace_id, r.created_at)
        for r in records
    ]
    conn = await asyncpg.connect(await clone(servers, "processor_bench_ceiling"))
    try:
        group_id = await conn.fetchval(
            "INSERT INTO link_outbox_group (item_count, business) VALUES ($1, true) "
            "RETURNING group_id",
            len(answers),
        )
        item_rows = [(group_id, i, "response", encode(a).decode()) for i, a in enumerate(answers)]
        times = {
            "bare_copy_requests": await _timed_copy(conn, "request", request_rows, REQUEST_COLUMNS),
            "bare_copy_outbox": await _timed_copy(conn, "link_outbox_item", item_rows, ITEM_COLUMNS),
        }
        await conn.execute("TRUNCATE request CASCADE")
        header = Header(uuid.uuid4(), "request-net", "response-net", 1, T0)
        started = time.perf_counter()
        async with conn.transaction():
            for start in range(0, len(records), CHUNK_RECORDS):
                await ProcessorInbound().apply(conn, records[start : start + CHUNK_RECORDS], header)
        times["bare_handler"] = time.perf_counter() - started
    finally:
        await conn.close()
    return times


async def _timed_copy(
    conn: asyncpg.Connection[Any], table: str, rows: list[tuple[Any, ...]], columns: Sequence[str]
) -> float:
    started = time.perf_counter()
    await conn.copy_records_to_table(table, records=rows, columns=columns)
    return time.perf_counter() - started


def _timed_file_ceilings(
    settings: ProcessorSettings, batch: Path, answers: list[Response]
) -> dict[str, float]:
    """Read the imported batch back; write the responses in batches of the export's size."""
    trusted = TrustedKeys.from_directory(settings.peer_keys_path)
    started = time.perf_counter()
    count = sum(1 for _ in BatchReader(batch, trusted, ToProcessor).records())
    read = time.perf_counter() - started
    assert count == RECORDS
    folder = settings.data_dir / "bare-batches"
    folder.mkdir()
    key = load_signing_key(settings.signing_key_path)
    started = time.perf_counter()
    for seq, start in enumerate(range(0, len(answers), BATCH_RECORDS), start=1):
        header = Header(uuid.uuid4(), "response-net", "request-net", seq, T0)
        with BatchWriter(folder, header, key) as writer:
            writer.write_many(answers[start : start + BATCH_RECORDS])
        writer.publish()
    return {"bare_batch_read": read, "bare_batch_write": time.perf_counter() - started}


async def jobs_round(servers: Servers, work: Path, number: int) -> dict[str, float]:
    """Per worker count: a bare arq run, then the processor's workers, same job count."""
    times: dict[str, float] = {}
    for workers in WORKER_COUNTS:
        times[f"bare_arq_{workers}"] = await bare_arq_run(servers.redis, workers)
        data_dir = work / f"jobs-{number}-{workers}"
        seconds, startup = await processor_run(servers, data_dir, workers)
        times[f"workers_{workers}"], times[f"startup_{workers}"] = seconds, startup
        await asyncio.to_thread(shutil.rmtree, data_dir)
    return times


async def processor_run(servers: Servers, data_dir: Path, workers: int) -> tuple[float, float]:
    """Seconds until every request is completed, and the workers' start-up seconds."""
    url = await clone(servers, "processor_bench_jobs")
    settings = processor_settings(data_dir, url, servers.redis)
    gateway = FakeGateway(settings)
    async with open_runtime(settings) as runtime, runtime.pool.acquire() as conn:
        user_id = await conn.fetchval("SELECT id FROM app_user WHERE username = $1", "bench-user")
        echoes = [request(user_id, "echo", n=i) for i in range(JOBS)]
        await asyncio.to_thread(gateway.send, echoes)
        await runtime.link.import_once()
        assert await runtime.arq.zcard(default_queue_name) == JOBS
        await runtime.redis.rename(default_queue_name, HELD_QUEUE)
    db = await asyncpg.connect(url)
    try:

        async def all_completed() -> bool:
            return await db.fetchval(UNFINISHED_SQL) == 0

        ports = [_free_port() for _ in range(workers)]
        argvs = [[str(WORKER_COMMAND), "worker"] for _ in ports]
        envs = [_worker_env(settings, port) for port in ports]
        run = await _timed_run(
            servers.redis, argvs, envs, data_dir, _processor_ready(ports), all_completed
        )
        statuses = dict(await db.fetch("SELECT status, count(*) FROM request GROUP BY status"))
        assert statuses == {"completed": JOBS}, statuses
    finally:
        await db.close()
    return run.seconds, run.startup


async def bare_arq_run(redis_url: str, workers: int) -> float:
    """Seconds for bare arq worker processes to run JOBS no-op jobs, queued beforehand."""
    arq = await create_pool(RedisSettings(**parse_redis_url(redis_url).arq_kwargs()))
    try:
        for number in range(JOBS):
            await arq.enqueue_job(NOOP_JOB, _job_id=f"noop-{number}")
        await arq.rename(default_queue_name, HELD_QUEUE)

        async def queue_empty() -> bool:
            return await arq.zcard(default_queue_name) == 0  # arq drops a job once finished

        argv = [sys.executable, "-m", "bench.processor_bench", "bare-arq", redis_url]
        env = dict(os.environ)
        run = await _timed_run(
            redis_url, [argv] * workers, [env] * workers, None, _announced_ready, queue_empty
        )
    finally:
        await arq.aclose()
    ran = sum(json.loads(output.splitlines()[-1])["jobs"] for output in run.outputs)
    assert ran == JOBS, f"bare arq workers ran {ran} jobs of {JOBS}"
    return run.seconds


Ready = Callable[[list[asyncio.subprocess.Process]], Awaitable[None]]


@dataclass(frozen=True)
class TimedRun:
    """Seconds from releasing the queue until done, start-up seconds, what each child printed."""

    seconds: float
    startup: float
    outputs: list[bytes]


async def _timed_run(
    redis_url: str,
    argvs: list[list[str]],
    envs: list[dict[str, str]],
    logs: Path | None,
    ready: Ready,
    done: Callable[[], Awaitable[bool]],
) -> TimedRun:
    """Start the processes, wait until ready, release the held queue, time until done."""
    client = redis.asyncio.Redis(**parse_redis_url(redis_url).redis_kwargs())
    processes: list[asyncio.subprocess.Process] = []
    spawned = time.perf_counter()
    try:
        for number, (argv, env) in enumerate(zip(argvs, envs, strict=True)):
            processes.append(await _spawn(argv, env, logs and logs / f"worker-{number}.log"))
        async with asyncio.timeout(READY_TIMEOUT_S):
            await ready(processes)
        startup = time.perf_counter() - spawned
        await client.rename(HELD_QUEUE, default_queue_name)
        started = time.perf_counter()
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while not await done():
                _check_alive(processes)
                await asyncio.sleep(POLL_S)
        seconds = time.perf_counter() - started
    finally:
        outputs = await _stop(processes)
        await client.flushdb()
        await client.aclose()
    return TimedRun(seconds, startup, outputs)


async def _spawn(argv: list[str], env: dict[str, str], log: Path | None) -> asyncio.subprocess.Process:
    if log is None:
        return await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE)
    output = await asyncio.to_thread(log.open, "wb")
    try:
        return await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
    finally:
        output.close()


async def _announced_ready(processes: list[asyncio.subprocess.Process]) -> None:
    """Bare workers print `ready` once their arq worker starts polling."""
    for process in processes:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"bare arq worker did not start: {line!r}")


def _processor_ready(ports: list[int]) -> Ready:
    """Ready once each worker's first reconciliation pass is done: it reports every request."""

    async def ready(processes: list[asyncio.subprocess.Process]) -> None:
        async with httpx.AsyncClient(timeout=2.0) as http:
            for port in ports:
                while _gauge(await _metrics(http, port), "processor_unfinished_requests") != JOBS:
                    _check_alive(processes)
                    await asyncio.sleep(POLL_S)

    return ready


async def _metrics(http: httpx.AsyncClient, port: int) -> str:
    with suppress(httpx.TransportError):
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return ""


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def _check_alive(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is not None:
            raise RuntimeError(f"a worker exited early with {process.returncode}")


async def _stop(processes: list[asyncio.subprocess.Process]) -> list[bytes]:
    """SIGTERM each process (kill it after STOP_TIMEOUT_S); what each printed on stdout."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    outputs = []
    for process in processes:
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                output = await process.stdout.read() if process.stdout else b""
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            output = b""
        if process.returncode != 0:
            raise RuntimeError(f"{process.pid} exited with {process.returncode} at SIGTERM")
        outputs.append(output)
    return outputs


def _worker_env(settings: ProcessorSettings, port: int) -> dict[str, str]:
    """A worker's environment: the run's folder and servers, its own port, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.pop(MULTIPROCESS_ENV, None)  # each worker's /metrics shows its own gauges
    assert settings.database_url is not None and settings.redis_url is not None
    return env | {
        f"{PREFIX}DATA_DIR": str(settings.data_dir),
        f"{PREFIX}DATABASE_URL": settings.database_url,
        f"{PREFIX}REDIS_URL": settings.redis_url,
        f"{PREFIX}WORKER_PORT": str(port),
        f"{PREFIX}WORKER_CONCURRENCY": str(CONCURRENCY),
        f"{PREFIX}LOG_FORMAT": "json",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _noop(ctx: dict[str, Any]) -> None:
    """The bare worker's job: nothing."""


async def bare_arq_worker(redis_url: str) -> None:
    """Child: an arq worker with the processor's settings and a no-op job, until SIGTERM."""
    arq = await create_pool(RedisSettings(**parse_redis_url(redis_url).arq_kwargs()))

    async def announce(ctx: dict[str, Any]) -> None:
        print("ready", flush=True)

    worker = Worker(
        functions=[func(_noop, name=NOOP_JOB)],
        redis_pool=arq,
        handle_signals=False,
        max_jobs=CONCURRENCY,
        keep_result=0,
        poll_delay=POLL_DELAY_S,
        log_results=False,
        on_startup=announce,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    jobs = asyncio.create_task(worker.async_run())
    await stop.wait()
    jobs.cancel()
    with suppress(asyncio.CancelledError):
        await jobs
    await worker.close()
    print(json.dumps({"jobs": worker.jobs_complete, "peak_rss_mb": own_peak_rss_mb()}))


async def measure(servers: Servers, work: Path) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Build the template, then REPEAT link rounds and REPEAT jobs rounds."""
    await build_template(servers, work)
    records, answers = requests(RECORDS), responses(RECORDS)
    gc.freeze()  # the fixtures live for the whole run: not rescanned by every collection
    link_rounds, job_rounds = [], []
    try:
        for number in range(1, REPEAT + 1):
            link_rounds.append(await link_round(servers, work / f"link-{number}", records, answers))
            print(f"  link round {number}/{REPEAT} done", flush=True)
        for number in range(1, REPEAT + 1):
            job_rounds.append(await jobs_round(servers, work, number))
            print(f"  jobs round {number}/{REPEAT} done", flush=True)
    finally:
        for name in DATABASES:
            with suppress(asyncpg.PostgresError):
                await execute(servers.postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return link_rounds, job_rounds


def run() -> Path:
    """Run the benchmark; return the report's path."""
    work = Path(tempfile.mkdtemp(prefix="airlock-processor-bench-"))
    # The link's and the importer's info lines would drown the progress lines.
    configure_logging("processor-bench", json=True, level="WARNING", stream=sys.stderr)
    services = resolve_service_urls(
        os.environ.get(DATABASE_URL_ENV), os.environ.get(REDIS_URL_ENV), work
    )
    started = time.perf_counter()
    try:
        servers = Servers(services.database_url, services.redis_url)
        print(
            f"response-processor: {REPEAT} rounds of {RECORDS:,} records each way, then "
            f"{REPEAT} rounds of {JOBS:,} jobs on {' and '.join(map(str, WORKER_COUNTS))} "
            "worker processes ...",
            flush=True,
        )
        link_rounds, job_rounds = asyncio.run(measure(servers, work))
    finally:
        services.stop()
        shutil.rmtree(work, ignore_errors=True)
    embedded = services.postgres is not None
    return _report(link_rounds, job_rounds, time.perf_counter() - started, embedded=embedded)

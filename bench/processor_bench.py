"""Response processor: import and export of 100,000 records, and jobs through `echo`.

- import: one `runtime.link.import_once()` of a 100,000-request batch that
  `response_processor.testing.FakeGateway` signed into the inbox: claim, verify, the
  processor's inbound handler
  (INSERT ... SELECT unnest per 5,000-record chunk), record, ack, commit, archive. Its
  after-import hook, which queues one arq job per new request, is timed apart as
  `queueing_jobs`, in the first round only (it takes most of a minute);
- export: `enqueue` of 100,000 responses in one transaction, then one `export_once` making
  and publishing batches of the processor's `max_batch_records` (10,000 by default);
- jobs: BENCH_PROCESSOR_JOBS (2,000) `echo` requests imported with their jobs queued; the
  queue is set aside (renamed) while 1 or 2 `response-processor worker` processes start,
  and put back once each worker's first reconciliation pass is over; timed until the
  database has every request `completed`. Start-up is reported apart, and the workers' CPU
  time and the machine's while the jobs ran.

Ceilings, in the same round: asyncpg `copy_records_to_table` of the same rows into the
processor's `request` and `link_outbox_item` tables, the inbound handler alone over decoded
records, a bare BatchReader of the imported batch, bare BatchWriters of the responses, the
same arq jobs written to Redis in pipelines; for jobs, bare arq worker processes running a
no-op job with the processor's arq settings.

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
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Never

import asyncpg
import httpx
import msgspec
import redis.asyncio
from arq import ArqRedis, Worker, create_pool
from arq.connections import RedisSettings
from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from arq.worker import func

from airlink import LinkService, enqueue
from airlink.inbox import CHUNK_RECORDS, ImportReport
from airlink.records import ProcessorBusiness, Request, Response, ToProcessor
from airlink.runner import Link
from airlink.schema import ITEM_COLUMNS, OUTBOX_GROUP, OUTBOX_ITEM
from batchformat import BatchReader, BatchWriter, Header, TrustedKeys, load_signing_key
from bench import query_times
from bench.harness import (
    machine_cpu_seconds,
    median,
    own_peak_rss_mb,
    process_cpu_seconds,
    write_report,
)
from bench.link_bench import T0, bench_header, database_url, execute, requests
from response_processor.domain import audit
from response_processor.domain.bootstrap import prepare_database
from response_processor.domain.users import UserIn, create_user
from response_processor.link.service import NewRequests, ProcessorLink
from response_processor.requests.queue import JOB_NAME
from response_processor.runtime import open_runtime
from response_processor.settings import PREFIX, ProcessorSettings
from response_processor.testing import FakeGateway, request
from response_processor.worker import POLL_DELAY_S
from servicekit.embedded import resolve_service_urls
from servicekit.logs import configure_logging
from servicekit.metrics import MULTIPROCESS_ENV, render_metrics
from servicekit.redis_url import parse_redis_url
from servicekit.testing import free_ports

RECORDS: Final = int(os.environ.get("BENCH_PROCESSOR_RECORDS", "100000"))
JOBS: Final = int(os.environ.get("BENCH_PROCESSOR_JOBS", "2000"))
REPEAT: Final = int(os.environ.get("BENCH_REPEAT", "3"))
WORKER_COUNTS: Final = (1, 2)
CONCURRENCY: Final = ProcessorSettings().worker_concurrency
BATCH_RECORDS: Final = ProcessorSettings().max_batch_records
TARGET_RECORDS_PER_S: Final = 50_000
DATABASE_URL_ENV: Final = "AIRLOCK_BENCH_DATABASE_URL"
REDIS_URL_ENV: Final = "AIRLOCK_BENCH_REDIS_URL"
TEMPLATE: Final = "processor_bench_template"
DATABASES: Final = (
    TEMPLATE,
    "processor_bench_link",
    "processor_bench_ceiling",
    "processor_bench_jobs",
)
BENCH_USER: Final = UserIn("bench-user", "benchmark user password 2026", ["user"], "standard")
HELD_QUEUE: Final = "processor_bench:held"
NOOP_JOB: Final = "noop"
WORKER_COMMAND: Final = Path(sys.executable).parent / "response-processor"
POLL_S: Final = 0.02
READY_TIMEOUT_S: Final = 120.0
DRAIN_TIMEOUT_S: Final = 600.0
STOP_TIMEOUT_S: Final = 30.0
NEW_GROUP_SQL: Final = f"""
    INSERT INTO {OUTBOX_GROUP} (item_count, business) VALUES ($1, true) RETURNING group_id
"""  # noqa: S608
REQUEST_COLUMNS: Final = ("id", "user_id", "type", "payload", "trace_id", "created_at")
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
    servers: Servers,
    data_dir: Path,
    records: list[Request],
    answers: list[Response],
    *,
    queue_jobs: bool,
    queries: dict[str, query_times.Buckets],
) -> dict[str, float]:
    """Time import, export and their ceilings once, on fresh databases; queueing if asked.
    The query times of the import and the export are added to `queries`."""
    url = await clone(servers, "processor_bench_link")
    settings = processor_settings(data_dir, url, servers.redis)
    gateway = FakeGateway(settings)
    async with open_runtime(settings) as runtime:
        await runtime.link.import_once()  # first passes (peer rows, folders) out of the way,
        await runtime.link.export_once()  # with the template's users and profile types
        batch = await asyncio.to_thread(gateway.send, records)
        hook_seconds = _time_committed(runtime.link.service, run=queue_jobs)
        queries_before = _own_query_buckets()
        started = time.perf_counter()
        report = await runtime.link.import_once()
        imported = time.perf_counter() - started
        _add(queries, "import", query_times.moved(_own_query_buckets(), queries_before))
        assert [(b.outcome, b.records) for b in report.batches] == [("applied", len(records))]
        times = {"import": imported - hook_seconds[0]}
        if queue_jobs:
            assert await runtime.arq.zcard(default_queue_name) == len(records)
            await runtime.redis.flushdb()
            times["queueing_jobs"], times["import_with_queueing"] = hook_seconds[0], imported
            times["bare_queue_pipelined"] = await _timed_bare_queueing(runtime.arq, records)
        queries_before = _own_query_buckets()
        times.update(await _timed_export(runtime.link, runtime.pool, answers))
        _add(queries, "export", query_times.moved(_own_query_buckets(), queries_before))
    times.update(await _timed_database_ceilings(servers, records, answers))
    archived = settings.inbox_path / "archive" / batch.name
    times.update(await asyncio.to_thread(_timed_file_ceilings, settings, archived, answers))
    await asyncio.to_thread(shutil.rmtree, data_dir)
    return times


def _own_query_buckets() -> query_times.Buckets:
    """This process's query-time histogram (the runtime's pool times every query)."""
    return query_times.read_buckets(render_metrics()[0].decode())


def _add(queries: dict[str, query_times.Buckets], run: str, moved: query_times.Buckets) -> None:
    queries[run] = query_times.total([queries.get(run, {}), moved])


def _time_committed(service: LinkService[Any, Never, NewRequests], *, run: bool) -> list[float]:
    """Wrap the service's `committed` (queueing jobs), to time it apart; `run=False` skips it."""
    committed = service.committed
    spent: list[float] = []

    async def timed(report: ImportReport[NewRequests]) -> None:
        started = time.perf_counter()
        if run:
            await committed(report)
        spent.append(time.perf_counter() - started)

    service.committed = timed  # type: ignore[method-assign]
    return spent


async def _timed_bare_queueing(arq: ArqRedis, records: list[Request]) -> float:
    """What `enqueue_job` writes for the same jobs, a pipeline per CHUNK_RECORDS of them.

    Each job's pickled key (PSETEX) and one ZADD per chunk, without arq's per-job WATCH and
    EXISTS round trips: about the least that queueing one arq job per request costs here.
    """
    now = timestamp_ms()
    started = time.perf_counter()
    for start in range(0, len(records), CHUNK_RECORDS):
        job_ids = [str(record.id) for record in records[start : start + CHUNK_RECORDS]]
        async with arq.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                job = serialize_job(JOB_NAME, (job_id,), {}, None, now)
                pipe.psetex(job_key_prefix + job_id, expires_extra_ms, job)
            pipe.zadd(default_queue_name, dict.fromkeys(job_ids, now))
            await pipe.execute()
    seconds = time.perf_counter() - started
    assert await arq.zcard(default_queue_name) == len(records)
    await arq.flushdb()
    return seconds


async def _timed_export(
    link: Link[ProcessorBusiness, Never, NewRequests],
    pool: asyncpg.Pool[Any],
    answers: list[Response],
) -> dict[str, float]:
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, answers)
    enqueued = time.perf_counter()
    report = await link.export_once()
    exported = time.perf_counter()
    # The ack of the gateway's batch rides along once due: one record more.
    assert sum(b.record_count for b in report.of_kind("new")) in (len(answers), len(answers) + 1)
    return {
        "enqueue": enqueued - started,
        "export_once": exported - enqueued,
        "export": exported - started,
    }


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
        group_id = await conn.fetchval(NEW_GROUP_SQL, len(answers))
        item_rows = [(group_id, i, "response", encode(a).decode()) for i, a in enumerate(answers)]
        times = {
            "bare_copy_requests": await _timed_copy(conn, "request", request_rows, REQUEST_COLUMNS),
            "bare_copy_outbox": await _timed_copy(conn, OUTBOX_ITEM, item_rows, ITEM_COLUMNS),
        }
        await conn.execute("TRUNCATE request CASCADE")
        header = bench_header()
        started = time.perf_counter()
        async with conn.transaction():
            for start in range(0, len(records), CHUNK_RECORDS):
                chunk = records[start : start + CHUNK_RECORDS]
                await ProcessorLink(arq=None).apply(conn, chunk, header)  # type: ignore[arg-type]
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
        header = Header(
            batch_id=uuid.uuid4(),
            source="response-net",
            destination="request-net",
            seq=seq,
            created_at=T0,
        )
        with BatchWriter(folder, header, key) as writer:
            writer.write_many(answers[start : start + BATCH_RECORDS])
        writer.publish()
    return {"bare_batch_read": read, "bare_batch_write": time.perf_counter() - started}


async def jobs_round(
    servers: Servers, work: Path, number: int, queries: dict[str, query_times.Buckets]
) -> dict[str, float]:
    """Per worker count: a bare arq run, then the processor's workers, same job count (their
    query times added to `queries`)."""
    figures: dict[str, float] = {}
    for workers in WORKER_COUNTS:
        folder = work / f"jobs-{number}-{workers}"
        bare = await bare_arq_run(servers.redis, workers, folder / "bare-arq")
        ours, worker_queries = await processor_run(servers, folder / "processor", workers)
        _add(queries, f"jobs, {workers} worker(s)", worker_queries)
        await asyncio.to_thread(shutil.rmtree, folder)
        for name, run in ((f"bare_arq_{workers}", bare), (f"workers_{workers}", ours)):
            figures[name] = run.seconds
            figures[f"{name}_startup"] = run.startup
            figures[f"{name}_cpu_ms"] = run.cpu_s / JOBS * 1000
            figures[f"{name}_busy_cores"] = run.machine_cpu_s / run.seconds
    return figures


async def processor_run(
    servers: Servers, data_dir: Path, workers: int
) -> tuple[TimedRun, query_times.Buckets]:
    """Run JOBS echo requests on `workers` worker processes, queued before they start; the
    run and the workers' query times (start-up included), read once every job is done."""
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
        ports = free_ports(workers)
        worker_queries: list[query_times.Buckets] = []

        async def all_completed() -> bool:
            unfinished: int = await db.fetchval(UNFINISHED_SQL)
            if unfinished == 0:  # before the workers stop: their histograms go with them
                async with httpx.AsyncClient(timeout=5.0) as http:
                    texts = [await _metrics(http, port) for port in ports]
                worker_queries.extend(query_times.read_buckets(text) for text in texts)
            return unfinished == 0

        argvs = [[str(WORKER_COMMAND), "worker"] for _ in ports]
        envs = [_worker_env(settings, port) for port in ports]
        run = await _timed_run(
            servers.redis, argvs, envs, data_dir, _processor_ready(ports), all_completed
        )
        rows = await db.fetch("SELECT status, count(*) FROM request GROUP BY status")
        statuses = {row["status"]: row["count"] for row in rows}
        assert statuses == {"completed": JOBS}, statuses
        answered = await db.fetchval(
            f"SELECT count(*) FROM {OUTBOX_ITEM} WHERE kind = 'response'"  # noqa: S608
        )
        assert answered == JOBS, f"{answered} responses queued for {JOBS} requests"
    finally:
        await db.close()
    return run, query_times.total(worker_queries)


async def bare_arq_run(redis_url: str, workers: int, logs: Path) -> TimedRun:
    """Run JOBS no-op jobs on `workers` bare arq worker processes, queued before they start."""
    await asyncio.to_thread(logs.mkdir, parents=True)
    arq = await create_pool(RedisSettings(**parse_redis_url(redis_url).arq_kwargs()))
    try:
        for number in range(JOBS):
            await arq.enqueue_job(NOOP_JOB, _job_id=f"noop-{number}")
        await arq.rename(default_queue_name, HELD_QUEUE)

        async def queue_empty() -> bool:
            queued: int = await arq.zcard(default_queue_name)
            return queued == 0  # arq takes a job out of its queue once it has finished

        argv = [sys.executable, "-m", "bench.processor_bench", "bare-arq", redis_url]
        env = dict(os.environ)
        run = await _timed_run(
            redis_url, [argv] * workers, [env] * workers, logs, _announced_ready, queue_empty
        )
    finally:
        await arq.aclose()
    ran = sum(json.loads(output.splitlines()[-1])["jobs"] for output in run.outputs)
    assert ran == JOBS, f"bare arq workers ran {ran} jobs of {JOBS}"
    return run


Ready = Callable[[list[asyncio.subprocess.Process]], Awaitable[None]]


@dataclass(frozen=True)
class TimedRun:
    """One run of worker processes over the held queue."""

    seconds: float  # from putting the queue back until done
    startup: float  # from spawning the processes until all were ready
    cpu_s: float  # used by the processes while `seconds` ran
    machine_cpu_s: float  # used by every process of the machine meanwhile
    outputs: list[bytes]  # what each printed on stdout


async def _timed_run(
    redis_url: str,
    argvs: list[list[str]],
    envs: list[dict[str, str]],
    logs: Path,
    ready: Ready,
    done: Callable[[], Awaitable[bool]],
) -> TimedRun:
    """Start the processes, wait until ready, release the held queue, time until done.

    Each process logs to `logs`/process-N.log; bare arq workers (`ready` is
    `_announced_ready`) talk to us on stdout.
    """
    client = redis.asyncio.Redis(**parse_redis_url(redis_url).redis_kwargs())
    processes: list[asyncio.subprocess.Process] = []
    spawned = time.perf_counter()
    try:
        for number, (argv, env) in enumerate(zip(argvs, envs, strict=True)):
            log = logs / f"process-{number}.log"
            processes.append(await _spawn(argv, env, log, pipe=ready is _announced_ready))
        async with asyncio.timeout(READY_TIMEOUT_S):
            await ready(processes)
        startup = time.perf_counter() - spawned
        await client.rename(HELD_QUEUE, default_queue_name)
        started, cpu, machine = time.perf_counter(), _cpu_s(processes), machine_cpu_seconds()
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while not await done():
                _check_alive(processes)
                await asyncio.sleep(POLL_S)
        seconds = time.perf_counter() - started
        cpu, machine = _cpu_s(processes) - cpu, machine_cpu_seconds() - machine
    finally:
        outputs = await _stop(processes)
        await client.flushdb()
        await client.aclose()
    if any(process.returncode != 0 for process in processes):
        codes = [process.returncode for process in processes]
        raise RuntimeError(f"workers exited with {codes} at SIGTERM (logs: {logs})")
    return TimedRun(seconds, startup, cpu, machine, outputs)


def _cpu_s(processes: list[asyncio.subprocess.Process]) -> float:
    return sum(process_cpu_seconds(process.pid) for process in processes)


async def _spawn(
    argv: list[str], env: dict[str, str], log: Path, *, pipe: bool
) -> asyncio.subprocess.Process:
    """Start a process logging to `log`; its stdout too unless `pipe`."""
    output = await asyncio.to_thread(log.open, "wb")
    try:
        stdout = asyncio.subprocess.PIPE if pipe else output
        return await asyncio.create_subprocess_exec(*argv, env=env, stdout=stdout, stderr=output)
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
            raise RuntimeError(f"worker {process.pid} exited early with {process.returncode}")


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
        outputs.append(output)
    return outputs


def _worker_env(settings: ProcessorSettings, port: int) -> dict[str, str]:
    """A worker's environment: the run's folder and servers, its own port, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.pop(MULTIPROCESS_ENV, None)  # each worker's /metrics shows its own gauges
    assert settings.database_url is not None
    assert settings.redis_url is not None
    return env | {
        f"{PREFIX}DATA_DIR": str(settings.data_dir),
        f"{PREFIX}DATABASE_URL": settings.database_url,
        f"{PREFIX}REDIS_URL": settings.redis_url,
        f"{PREFIX}WORKER_PORT": str(port),
        f"{PREFIX}WORKER_CONCURRENCY": str(CONCURRENCY),
        f"{PREFIX}LOG_FORMAT": "json",
    }


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
    print(json.dumps({"jobs": worker.jobs_complete}))


async def measure(
    servers: Servers, work: Path, queries: dict[str, query_times.Buckets]
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Build the template, then REPEAT link rounds and REPEAT jobs rounds; their query
    times go to `queries`."""
    await build_template(servers, work)
    records, answers = requests(RECORDS), responses(RECORDS)
    gc.freeze()  # the fixtures live for the whole run: not rescanned by every collection
    link_rounds, job_rounds = [], []
    try:
        for number in range(1, REPEAT + 1):
            # Queueing 100,000 jobs takes most of a minute, long enough to average over the
            # machine's slow spells by itself: timed in the first round only, to save minutes.
            data_dir = work / f"link-{number}"
            figures = await link_round(
                servers, data_dir, records, answers, queue_jobs=number == 1, queries=queries
            )
            link_rounds.append(figures)
            print(f"  link round {number}/{REPEAT} done", flush=True)
        for number in range(1, REPEAT + 1):
            job_rounds.append(await jobs_round(servers, work, number, queries))
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
        queries: dict[str, query_times.Buckets] = {}
        link_rounds, job_rounds = asyncio.run(measure(servers, work, queries))
    except BaseException:
        print(f"response-processor: failed; the processes' logs are kept in {work}")
        raise
    finally:
        services.stop()
    shutil.rmtree(work, ignore_errors=True)
    embedded = services.postgres is not None
    total_s = time.perf_counter() - started
    return _report(link_rounds, job_rounds, queries, total_s, embedded=embedded)


LINK_STEPS: Final = (
    "import", "queueing_jobs", "import_with_queueing", "enqueue", "export_once", "export",
    "bare_copy_requests", "bare_handler", "bare_batch_read", "bare_queue_pipelined",
    "bare_copy_outbox", "bare_batch_write",
)  # fmt: skip
LINK_RATIOS: Final = {
    "import_vs_read_plus_copy": ("import", ("bare_batch_read", "bare_copy_requests")),
    "import_vs_read_plus_handler": ("import", ("bare_batch_read", "bare_handler")),
    "queueing_vs_pipelined": ("queueing_jobs", ("bare_queue_pipelined",)),
    "export_vs_copy_plus_write": ("export", ("bare_copy_outbox", "bare_batch_write")),
}


def _ratio(rounds: list[dict[str, float]], ours: str, parts: Sequence[str]) -> float:
    """Bare seconds over ours, per round (cancelling the machine's slow spells); the median."""
    return round(median([sum(r[p] for p in parts) / r[ours] for r in rounds if ours in r]), 3)


def _report(
    link_rounds: list[dict[str, float]],
    job_rounds: list[dict[str, float]],
    queries: dict[str, query_times.Buckets],
    total_s: float,
    *,
    embedded: bool,
) -> Path:
    seconds = {name: median([r[name] for r in link_rounds if name in r]) for name in LINK_STEPS}
    rates = {name: round(RECORDS / s) for name, s in seconds.items()}
    met = {
        f"{name}_met": rates[name] >= TARGET_RECORDS_PER_S
        for name in ("import", "export", "import_with_queueing")
    }
    figures: dict[str, Any] = {
        "records": RECORDS,
        "jobs": JOBS,
        "rounds": len(link_rounds),
        "queueing_rounds": sum("queueing_jobs" in r for r in link_rounds),
        "worker_concurrency": CONCURRENCY,
        "max_batch_records": BATCH_RECORDS,
        "database": "embedded PostgreSQL 16 (pgserver), fsync on" if embedded else "external",
        "seconds_median": {name: round(s, 3) for name, s in seconds.items()},
        "records_per_s": rates,
        "ratios": {name: _ratio(link_rounds, o, p) for name, (o, p) in LINK_RATIOS.items()},
        "jobs_by_processes": _job_figures(job_rounds),
        "two_vs_one_worker": _ratio(job_rounds, "workers_2", ["workers_1"]),
        "targets": {"records_per_s_min": TARGET_RECORDS_PER_S, **met},
        "query_times": {run: query_times.rows(buckets) for run, buckets in queries.items()},
        "peak_rss_mb": round(own_peak_rss_mb(), 1),
        "total_run_s": round(total_s),
    }
    markdown = "\n".join(
        [*_link_section(figures), *_jobs_section(figures), *_queries_section(queries), *_closing()]
    )
    return write_report("response-processor", figures, markdown)


def _job_figures(rounds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per process count: medians for ours and for bare arq, and ours against bare arq."""
    figures = {}
    for count in WORKER_COUNTS:
        entry: dict[str, float] = {}
        for kind in ("workers", "bare_arq"):
            name = f"{kind}_{count}"
            entry[f"{kind}_jobs_per_s"] = round(JOBS / median([r[name] for r in rounds]))
            for suffix in ("startup", "cpu_ms", "busy_cores"):
                entry[f"{kind}_{suffix}"] = round(
                    median([r[f"{name}_{suffix}"] for r in rounds]), 2
                )
        entry["ratio_to_bare_arq"] = _ratio(rounds, f"workers_{count}", [f"bare_arq_{count}"])
        figures[str(count)] = entry
    return figures


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _link_section(figures: dict[str, Any]) -> list[str]:
    seconds, rates, met = figures["seconds_median"], figures["records_per_s"], figures["targets"]
    queue_share = seconds["queueing_jobs"] / seconds["import_with_queueing"]
    return [
        "# response-processor throughput",
        "",
        f"{figures['rounds']} rounds on {figures['database']}, each run on a fresh database "
        f"cloned from a migrated template, medians reported; whole run {figures['total_run_s']} "
        "s. Reproduce: `uv run python -m bench response-processor` (`BENCH_PROCESSOR_RECORDS`, "
        "`BENCH_PROCESSOR_JOBS`, `BENCH_REPEAT`, `AIRLOCK_BENCH_DATABASE_URL`, "
        "`AIRLOCK_BENCH_REDIS_URL`).",
        "",
        f"## {RECORDS:,} records each way through the processor's link",
        "",
        "| step | seconds | records/s |",
        "|---|---|---|",
        *[f"| {name} | {seconds[name]:.3f} | {rates[name]:,} |" for name in LINK_STEPS],
        "",
        "- `import`: `runtime.link.import_once()` on one batch of gateway requests (~300 B "
        "each) that `response_processor.testing.FakeGateway` signed into the inbox: claim, "
        "verify, the inbound "
        "handler's INSERT ... SELECT unnest per 5,000-record chunk, record, ack, commit, "
        "archive; without its after-import hook, timed apart as `queueing_jobs`: select the "
        "new requests' ids, one arq `enqueue_job` per request (its records/s are jobs/s), "
        f"audit. Queueing is {queue_share:.0%} of `import_with_queueing`, the whole call. "
        f"Taking {seconds['queueing_jobs']:.0f} s, it is timed in the first round only (with "
        "`bare_queue_pipelined`); the later rounds' imports skip the hook.",
        "- `export` = `enqueue` (the responses checked and COPYed into the outbox, one "
        f"transaction) + `export_once` (batches of {figures['max_batch_records']:,}, the "
        "processor's default: render from the database, sign, fsync, publish, audit).",
        "- ceilings: `bare_copy_requests` and `bare_copy_outbox` (asyncpg "
        "`copy_records_to_table` of the same rows, prepared beforehand, into the processor's "
        "own `request` and `link_outbox_item` tables, indexes included); `bare_batch_read` "
        "(BatchReader over the imported batch file); `bare_batch_write` (BatchWriters over "
        "the responses, in the export's batch size); `bare_queue_pipelined` (the same jobs' "
        "pickled keys and queue entries, as arq writes them, in one pipeline per 5,000 jobs, "
        "without arq's per-job WATCH/EXISTS round trips). `bare_handler` is the inbound "
        "handler alone over decoded records, 5,000 at a time, in one transaction.",
        "",
        "| ratio (bare seconds / ours, median of per-round ratios) | value |",
        "|---|---|",
        *[f"| {name} | {value:.2f} |" for name, value in figures["ratios"].items()],
        "",
        f"Target {TARGET_RECORDS_PER_S:,} records/s or more each way: import "
        f"{_verdict(met['import_met'])}, export {_verdict(met['export_met'])}; import with its "
        f"jobs queued {_verdict(met['import_with_queueing_met'])}.",
        "",
    ]


def _jobs_section(figures: dict[str, Any]) -> list[str]:
    by_count = figures["jobs_by_processes"]
    cpus = os.cpu_count()
    return [
        f"## {JOBS:,} `echo` jobs, {figures['worker_concurrency']} at a time per process",
        "",
        "| processes | jobs/s | bare arq jobs/s | ratio | CPU ms/job (bare) | busy cores "
        "(bare) | start-up s |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {n} | {f['workers_jobs_per_s']:,} | {f['bare_arq_jobs_per_s']:,} | "
            f"{f['ratio_to_bare_arq']:.2f} | {f['workers_cpu_ms']:.2f} ({f['bare_arq_cpu_ms']:.2f})"
            f" | {f['workers_busy_cores']:.2f} ({f['bare_arq_busy_cores']:.2f}) | "
            f"{f['workers_startup']:.2f} |"
            for n, f in by_count.items()
        ],
        "",
        "- The requests are imported with their jobs queued; the queue is then renamed aside "
        "while the `response-processor worker` processes start (each with its own "
        "PROCESSOR_WORKER_PORT, same database and Redis); once each worker's /metrics shows "
        "its first reconciliation pass done, the queue is renamed back and the clock starts. "
        "It stops when the database has no request left unfinished (polled every "
        f"{POLL_S * 1000:.0f} ms); every request is then checked `completed`.",
        "- `start-up s`: from spawning the workers until the last is ready (imports, migration "
        "check, bootstrap, first reconciliation pass over the queued requests); not in jobs/s.",
        "- bare arq: as many `arq.Worker` processes with the processor's arq settings "
        f"(max_jobs {CONCURRENCY}, poll_delay {POLL_DELAY_S} s, keep_result 0) running the "
        "same number of no-op jobs, queued and released the same way; timed until arq's queue "
        "is empty. `ratio` is bare seconds / ours, per round.",
        "- `CPU ms/job`: user+system CPU of the worker processes themselves while the jobs "
        f"ran, per job; `busy cores`: every process of the machine ({cpus} vCPUs) over the "
        "same time, the database and Redis included.",
        f"- Two workers against one: {figures['two_vs_one_worker']:.2f}x the jobs/s.",
        "",
    ]


# The import's INSERT ... SELECT unnest of a 5,000-record chunk (requests/inbound.py).
BULK_STATEMENTS: Final = frozenset({"insert request"})


def _queries_section(queries: dict[str, query_times.Buckets]) -> list[str]:
    return [
        "## Database query times under load",
        "",
        "The processor's `db_query_duration_seconds{query}` (every query its pools run, timed "
        "from the client side): `import` and `export` from this process's runtime over every "
        "link round (the first round's import includes its jobs' queueing), the jobs runs "
        "from the worker processes' /metrics, read once every job was done (their start-up "
        "included), all rounds added up. The import's `insert request` carries 5,000 records "
        "per statement: a bulk statement's time, not one request's.",
        "",
        *query_times.markdown(queries, bulk=BULK_STATEMENTS),
        "",
    ]


def _closing() -> list[str]:
    return [
        "This machine has 2 vCPUs shared by the benchmark, the database, Redis and the "
        "workers, and its speed varies by up to 2x within minutes; compare ratios rather than "
        "absolute figures. The benchmark's own fixtures are frozen out of the garbage "
        "collector (`gc.freeze()`).",
        "",
    ]


def main(argv: list[str]) -> None:
    """Child entry point: `python -m bench.processor_bench bare-arq REDIS_URL`."""
    command, redis_url = argv
    assert command == "bare-arq", command
    asyncio.run(bare_arq_worker(redis_url))


if __name__ == "__main__":
    main(sys.argv[1:])

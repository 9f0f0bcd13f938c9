"""Two sides of a link on real PostgreSQL databases and real folders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from airlink import ImportReport, Link, LinkService, LinkSettings, enqueue
from airlink.encryption import PLAINTEXT, LinkEncryption
from airlink.records import (
    GatewayBusiness,
    OutboundRecord,
    ProcessorBusiness,
    Request,
    Response,
    ToProcessor,
)
from batchformat import (
    BatchReader,
    Header,
    SigningKey,
    TrustedKeys,
    generate_encryption_key_pair,
    generate_key_pair,
    load_signing_key,
    write_batch,
)
from servicekit.database import Connection
from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase

APPS = ["airlink.piccolo_app"]
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

SCRATCH_TABLES = [
    """CREATE TABLE applied (
        n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind text NOT NULL, record jsonb NOT NULL, batch_id uuid NOT NULL)""",
    "CREATE TABLE acknowledged (kind text NOT NULL, record jsonb NOT NULL)",
    # The columns servicekit.audit writes (each service's migrations create the table).
    """CREATE TABLE audit_log (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz DEFAULT now(),
        actor_id uuid, actor varchar(64), action varchar(64) NOT NULL, target varchar(200),
        outcome varchar(16) NOT NULL, client_address varchar(64), details jsonb NOT NULL)""",
]


async def migrated(url: str) -> None:
    await migrate(url, APPS)


def link_database(postgres_database: MakeDatabase) -> str:
    """A fresh database with the link's migrations applied."""
    return postgres_database(migrated, key="airlink")


class ScratchService(LinkService[Any, OutboundRecord, int]):
    """Writes every applied record into `applied` (plainly: applying twice shows twice), and
    every acknowledged one into `acknowledged`; each chunk's effect is its size."""

    sent_records = OutboundRecord

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail_with: BaseException | None = None
        self.poisoned: set[uuid.UUID] = set()  # batches whose records it cannot apply
        self.committed_reports: list[ImportReport[int]] = []

    async def apply(self, conn: Connection, records: Sequence[Any], header: Header) -> int:
        self.calls.append(len(records))
        rows = [(_kind(record), _json(record), header.batch_id) for record in records]
        await conn.copy_records_to_table(
            "applied", records=rows, columns=["kind", "record", "batch_id"]
        )
        if self.fail_with is not None:
            raise self.fail_with
        if header.batch_id in self.poisoned:
            raise ValueError("a bug in the service's handler")
        return len(records)

    async def acknowledged(self, conn: Connection, sent: Sequence[OutboundRecord]) -> None:
        rows = [(_kind(record), _json(record)) for record in sent]
        await conn.executemany("INSERT INTO acknowledged (kind, record) VALUES ($1, $2)", rows)

    async def committed(self, report: ImportReport[int]) -> None:
        self.committed_reports.append(report)


class GatewayScratch(ScratchService):
    inbound_records = GatewayBusiness


class ProcessorScratch(ScratchService):
    inbound_records = ProcessorBusiness


def _kind(record: Any) -> str:
    return str(type(record).__struct_config__.tag)


def _json(record: Any) -> str:
    return msgspec.json.encode(record).decode()


@dataclass
class Side:
    """One service's end of the link: its database, folders, keys and Link."""

    name: str
    url: str
    pool: asyncpg.Pool[Any]
    settings: LinkSettings
    key: SigningKey
    service: ScratchService
    link: Link[Any, OutboundRecord, int]

    async def enqueue(self, records: Sequence[OutboundRecord]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await enqueue(conn, records)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(query, *args)

    async def applied(self) -> list[tuple[str, uuid.UUID]]:
        rows = await self.pool.fetch("SELECT kind, batch_id FROM applied ORDER BY n")
        return [(row["kind"], row["batch_id"]) for row in rows]

    def outbox_files(self) -> list[Path]:
        return sorted(p for p in self.settings.outbox_dir.iterdir() if p.suffix == ".jsonl")

    def inbox_files(self) -> list[Path]:
        return sorted(p for p in self.settings.inbox_dir.iterdir() if p.suffix == ".jsonl")

    def quarantined(self) -> list[str]:
        folder = self.settings.quarantine_dir
        if not folder.exists():
            return []
        return sorted(p.name for p in folder.iterdir() if p.suffix == ".jsonl")


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    for key_id in ("request-net-1", "response-net-1", "intruder", "request-net-2"):
        generate_key_pair(key_id, folder)
    for key_id in ("response-net-enc-1", "response-net-enc-2", "request-net-enc-1"):
        generate_encryption_key_pair(key_id, folder)
    return folder


def trusted(key_dir: Path, key_id: str) -> TrustedKeys:
    return TrustedKeys.from_files([key_dir / f"{key_id}.pub"])


def make_settings(
    network_id: str, peer: str, outbox: Path, inbox: Path, **overrides: Any
) -> LinkSettings:
    return LinkSettings(
        network_id=network_id,
        peer_network_id=peer,
        outbox_dir=outbox,
        inbox_dir=inbox,
        **overrides,
    )


@dataclass
class SideFactory:
    """Builds sides on fresh databases; two sides made from one factory share folders."""

    root: Path
    key_dir: Path
    make_database: MakeDatabase
    pools: list[asyncpg.Pool[Any]]
    links: list[Link[Any, OutboundRecord, int]]

    async def side(
        self,
        name: str,
        *,
        url: str | None = None,
        clock: Callable[[], datetime] = lambda: T0,
        encryption: LinkEncryption = PLAINTEXT,
        signing_key_id: str | None = None,
        trusted_key_ids: Sequence[str] | None = None,
        **overrides: Any,
    ) -> Side:
        gateway = name == "gateway"
        own, peer = ("request-net", "response-net") if gateway else ("response-net", "request-net")
        to_processor = self.root / "to-processor"
        to_gateway = self.root / "to-gateway"
        outbox, inbox = (to_processor, to_gateway) if gateway else (to_gateway, to_processor)
        for folder in (outbox, inbox):
            folder.mkdir(parents=True, exist_ok=True)
        if url is None:
            url = link_database(self.make_database)
            await _create_scratch_tables(url)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        self.pools.append(pool)
        settings = make_settings(own, peer, outbox, inbox, **overrides)
        key = load_signing_key(self.key_dir / f"{signing_key_id or own + '-1'}.key")
        trusted_ids = trusted_key_ids or [f"{peer}-1"]
        service = GatewayScratch() if gateway else ProcessorScratch()
        link = Link(
            pool,
            settings,
            service,
            signing_key=key,
            peer_keys=TrustedKeys.from_files([self.key_dir / f"{i}.pub" for i in trusted_ids]),
            encryption=encryption,
            clock=clock,
        )
        self.links.append(link)
        return Side(name, url, pool, settings, key, service, link)


async def _create_scratch_tables(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in SCRATCH_TABLES:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def sides(
    tmp_path: Path, key_dir: Path, postgres_database: MakeDatabase
) -> AsyncIterator[SideFactory]:
    factory = SideFactory(tmp_path, key_dir, postgres_database, [], [])
    try:
        yield factory
    finally:
        for link in factory.links:
            link.close()
        for pool in factory.pools:
            await pool.close()


def request(n: int = 0, **overrides: Any) -> Request:
    fields: dict[str, Any] = {
        "id": uuid.UUID(int=n + 1),
        "user_id": uuid.UUID(int=7),
        "type": "echo",
        "payload": {"n": n, "text": "héllo", "nested": {"b": 2, "a": [1.5, None, True]}},
        "created_at": T0,
        "trace_id": f"trace-{n}",
    }
    fields.update(overrides)
    return Request(**fields)


def response(n: int = 0) -> Response:
    return Response(
        request_id=uuid.UUID(int=n + 1),
        status="completed",
        result={"n": n},
        error=None,
        finished_at=T0,
        trace_id=f"trace-{n}",
    )


def at(seconds: float) -> datetime:
    """The test clock: T0 plus some seconds."""
    return T0 + timedelta(seconds=seconds)


def read_batch(
    path: Path, key_dir: Path, record_type: Any = ToProcessor
) -> tuple[Header, list[Any]]:
    """Verify a published batch with its source's key; its header and records."""
    source = path.name.split("__")[0]
    reader = BatchReader(path, trusted(key_dir, f"{source}-1"), record_type)
    records = list(reader.records())
    assert reader.result is not None
    return reader.result.header, records


def publish(
    folder: Path,
    key: SigningKey,
    records: Sequence[Any],
    seq: int,
    *,
    source: str = "request-net",
    destination: str = "response-net",
    batch_id: uuid.UUID | None = None,
) -> Path:
    """Write a batch as a peer would, straight into a folder."""
    header = Header(
        batch_id=batch_id or uuid.uuid4(),
        source=source,
        destination=destination,
        seq=seq,
        created_at=T0,
    )
    return write_batch(folder, header, records, key).path

"""A real gateway for the tests: migrated PostgreSQL, Redis, the app with its lifespan, and
a fake processor that signs sync and response batches into the gateway's inbox."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from airlink.inbox import ImportReport
from airlink.records import ProfileType, ToProcessor, User
from authkit.passwords import hash_password
from batchformat import (
    BatchReader,
    Header,
    SigningKey,
    TrustedKeys,
    generate_key_pair,
    load_signing_key,
    write_batch,
)
from request_gateway.app import create_app
from request_gateway.db.piccolo_app import APPS
from request_gateway.health import health_checks
from request_gateway.runtime import Runtime, open_runtime
from request_gateway.settings import GatewaySettings
from servicekit.health import report_handler
from servicekit.metrics import metrics_handler
from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase

PASSWORD = "ordinary user password 77"
Client = AsyncTestClient[Any]


@pytest.fixture
def database_url(postgres_database: MakeDatabase) -> str:
    async def setup(url: str) -> None:
        await migrate(url, APPS)

    return postgres_database(setup, key="request-gateway")


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> GatewaySettings:
    return GatewaySettings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret="test-secret-" + "x" * 40,
        log_format="json",
    )


class FakeProcessor:
    """Signs batches as `response-net` would and drops them into the gateway's inbox."""

    def __init__(self, settings: GatewaySettings) -> None:
        private, public = generate_key_pair("response-net-test", settings.data_dir / "proc-keys")
        settings.peer_keys_path.mkdir(parents=True, exist_ok=True)
        (settings.peer_keys_path / public.name).write_bytes(public.read_bytes())
        self.key: SigningKey = load_signing_key(private)
        self.inbox = settings.inbox_path
        self._seq = itertools.count(1)

    def send(self, records: Sequence[Any]) -> Path:
        """Publish one batch of records into the inbox; return its path."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        header = Header(
            batch_id=uuid.uuid4(),
            source="response-net",
            destination="request-net",
            seq=next(self._seq),
            created_at=datetime.now(UTC),
        )
        return write_batch(self.inbox, header, records, self.key).path


@pytest.fixture
def processor(settings: GatewaySettings) -> FakeProcessor:
    return FakeProcessor(settings)


@pytest.fixture
async def client(settings: GatewaySettings, processor: FakeProcessor) -> AsyncIterator[Client]:
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def ops(client: Client) -> Client:
    """`client` with the operations port's routes (/health, /metrics): `with_operations`."""
    return with_operations(client)


def with_operations(client: Client) -> Client:
    """`client` with the operations port's routes (/health, /metrics) added to its app.

    The API's own port no longer has them; in-process, one test client (one event loop) has
    to serve both, as the operations port's checks use the API's runtime.
    """
    client.app.register(report_handler(lambda app: health_checks(app.state.runtime)))
    client.app.register(metrics_handler())
    return client


@pytest.fixture
async def link_runtime(
    settings: GatewaySettings, processor: FakeProcessor
) -> AsyncIterator[Runtime]:
    """A runtime in the test's own event loop: its link imports and exports for the tests."""
    async with open_runtime(settings, listen=False) as runtime:
        yield runtime


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection of the test's own, in the test's event loop."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


Sync = Callable[[Sequence[Any]], Awaitable[ImportReport[None]]]


@pytest.fixture
def sync(processor: FakeProcessor, link_runtime: Runtime) -> Sync:
    """Send records from the processor and import them, as the worker would."""

    async def send_and_import(records: Sequence[Any]) -> ImportReport[None]:
        processor.send(records)
        report = await link_runtime.link.import_once()
        assert [batch.outcome for batch in report.batches] == ["applied"], report
        return report

    return send_and_import


def profile_type(
    name: str = "standard",
    *,
    version: int = 1,
    rpm: int = 600,
    burst: int = 100,
    types: Sequence[str] = ("echo", "documents.search"),
    max_payload_bytes: int = 4096,
    max_pending: int = 100,
) -> ProfileType:
    return ProfileType(
        name=name,
        requests_per_minute=rpm,
        burst=burst,
        allowed_request_types=list(types),
        max_payload_bytes=max_payload_bytes,
        max_pending_requests=max_pending,
        version=version,
    )


async def user_record(
    username: str,
    *,
    user_id: uuid.UUID | None = None,
    roles: Sequence[str] = ("user",),
    profile: str = "standard",
    active: bool = True,
    version: int = 1,
    password: str = PASSWORD,
    must_change_password: bool = False,
) -> User:
    return User(
        id=user_id or uuid.uuid4(),
        username=username,
        password_hash=await hash_password(password),
        roles=list(roles),  # type: ignore[arg-type]
        profile_type=profile,
        active=active,
        must_change_password=must_change_password,
        version=version,
    )


@dataclass(frozen=True)
class Member:
    """A synced user, their tokens and the headers to act as them."""

    id: uuid.UUID
    username: str
    tokens: dict[str, Any]
    record: User

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.tokens)


MakeMember = Callable[..., Awaitable[Member]]


@pytest.fixture
def make_member(client: Client, sync: Sync) -> MakeMember:
    """Sync a user (and their profile type) from the processor, then log them in."""

    async def make(roles: Sequence[str] = ("user",), profile: ProfileType | None = None) -> Member:
        username = f"u{uuid.uuid4().hex[:10]}"
        record = await user_record(
            username, roles=roles, profile=profile.name if profile else "standard"
        )
        await sync([profile or profile_type(), record])
        tokens = await login(client, username, PASSWORD)
        return Member(record.id, username, tokens, record)

    return make


async def login(client: Client, username: str, password: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def sent_batches(settings: GatewaySettings) -> list[tuple[Header, list[Any]]]:
    """Every batch in the outbox (header, records), read and verified as the processor would."""
    trusted = TrustedKeys.from_files([settings.signing_key_path.with_suffix(".pub")])
    batches = []
    for path in sorted(settings.outbox_path.glob("*.jsonl")):
        reader = BatchReader(path, trusted, ToProcessor)
        records = list(reader.records())
        assert reader.header is not None
        batches.append((reader.header, records))
    return batches


def sent_records(settings: GatewaySettings, kind: type[Any]) -> list[Any]:
    """The records of one kind the gateway has published."""
    return [
        record
        for _, records in sent_batches(settings)
        for record in records
        if isinstance(record, kind)
    ]

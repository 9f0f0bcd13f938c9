"""A real processor for the tests: migrated PostgreSQL, Redis, the app with its lifespan."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from response_processor.app import create_app
from response_processor.db.piccolo_app import APPS
from response_processor.health import health_checks
from response_processor.runtime import Runtime
from response_processor.settings import ProcessorSettings
from servicekit.health import report_handler
from servicekit.metrics import metrics_handler
from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase

ADMIN_PASSWORD = "first-start password 0001"
NEW_ADMIN_PASSWORD = "a much better password 2026"
USER_PASSWORD = "ordinary user password 77"


@pytest.fixture
def database_url(postgres_database: MakeDatabase) -> str:
    async def setup(url: str) -> None:
        await migrate(url, APPS)

    return postgres_database(setup, key="response-processor")


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> ProcessorSettings:
    password_file = tmp_path / "admin-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    return ProcessorSettings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret="test-secret-" + "x" * 40,
        admin_password_file=password_file,
        log_format="json",
    )


Client = AsyncTestClient[Any]


@pytest.fixture
async def client(settings: ProcessorSettings) -> AsyncIterator[Client]:
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
def runtime(client: Client) -> Runtime:
    """The app's runtime: its settings and keys (its pool lives in the app's event loop)."""
    runtime: Runtime = client.app.state.runtime
    return runtime


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection of the test's own, in the test's event loop."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def login(client: Client, username: str, password: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
async def admin(client: Client) -> dict[str, str]:
    """Headers of the bootstrap admin, after its forced first password change."""
    first = await login(client, "admin", ADMIN_PASSWORD)
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": NEW_ADMIN_PASSWORD},
        headers=bearer(first),
    )
    assert changed.status_code == 204, changed.text
    return bearer(await login(client, "admin", NEW_ADMIN_PASSWORD))


@dataclass(frozen=True)
class Member:
    """A user made through the API, and the headers to act as them."""

    id: uuid.UUID
    username: str
    headers: dict[str, str]


MakeMember = Callable[..., Awaitable[Member]]


@pytest.fixture
def make_member(client: Client, admin: dict[str, str]) -> MakeMember:
    async def make(roles: list[str] | None = None, profile_type: str = "standard") -> Member:
        username = f"u{uuid.uuid4().hex[:10]}"
        created = await client.post(
            "/api/v1/users",
            json={
                "username": username,
                "password": USER_PASSWORD,
                "roles": roles or ["user"],
                "profile_type": profile_type,
            },
            headers=admin,
        )
        assert created.status_code == 201, created.text
        tokens = await login(client, username, USER_PASSWORD)
        return Member(uuid.UUID(created.json()["id"]), username, bearer(tokens))

    return make

"""The admin API can be limited to the response network's admin address ranges."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from response_processor.app import create_app
from response_processor.settings import ProcessorSettings
from tests.response_processor.conftest import ADMIN_PASSWORD, Client


@pytest.fixture
async def fenced(settings: ProcessorSettings) -> AsyncIterator[Client]:
    # The test client connects from 127.0.0.1 ("testclient" is not an address at all).
    fenced_settings = msgspec.structs.replace(
        settings, admin_allowed_networks=["10.20.0.0/16", "192.168.7.0/24"]
    )
    async with AsyncTestClient(create_app(fenced_settings)) as client:
        yield client


async def test_requests_from_elsewhere_are_refused_and_audited(
    fenced: Client, database_url: str
) -> None:
    response = await fenced.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "address_not_allowed"
    assert (await fenced.get("/health/live")).status_code == 200  # monitoring still works
    connection = await asyncpg.connect(database_url)
    try:
        refused = await connection.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'admin_access_refused'"
        )
    finally:
        await connection.close()
    assert refused == 1

"""What `request-gateway serve` exposes, and to whom: HTTPS on the users' port, /health and
/metrics on the operations port only, X-Forwarded-For believed from trusted proxies only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from request_gateway.runtime import prepare_database
from servicekit.testing import MakeDatabase
from tests.request_gateway.live import LiveGateway, live_settings, serve
from tests.servicekit.certificates import ServerCertificate, make_server_certificate

LOGIN = "/api/v1/auth/login"
PER_ADDRESS_ATTEMPTS = 20  # authkit's LoginLimiter default per address and window
CLIENT = "203.0.113.7"
OTHER_CLIENT = "198.51.100.23"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("tls"))


def _serve(
    make_database: MakeDatabase,
    redis_url: str,
    data_dir: Path,
    certificate: ServerCertificate,
    trusted_proxies: str,
) -> Iterator[LiveGateway]:
    database_url = make_database(prepare_database, key="request-gateway")
    settings = live_settings(data_dir, database_url, redis_url)
    with serve(
        settings,
        workers=1,
        scheme="https",
        verify=certificate.client_context(),
        GATEWAY_TLS_CERT_FILE=str(certificate.cert_file),
        GATEWAY_TLS_KEY_FILE=str(certificate.key_file),
        GATEWAY_TRUSTED_PROXIES=trusted_proxies,
    ) as gateway:
        yield gateway
        if gateway.process.poll() is None:
            assert gateway.stop() == 0, gateway.output()


@pytest.fixture(scope="module")
def behind_proxy(
    postgres_module_database: MakeDatabase,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    certificate: ServerCertificate,
) -> Iterator[LiveGateway]:
    """A gateway whose load balancer is on this host (127.0.0.1 is trusted)."""
    data_dir = tmp_path_factory.mktemp("behind-proxy")
    yield from _serve(
        postgres_module_database, redis_server_url, data_dir, certificate, "127.0.0.1/32"
    )


def https(gateway: LiveGateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, verify=gateway.verify, timeout=30)


async def failed_logins(gateway: LiveGateway, count: int, **headers: str) -> list[int]:
    """`count` logins with a wrong password (each for a new username), their statuses."""
    async with https(gateway) as client:
        return [
            (
                await client.post(
                    LOGIN,
                    json={"username": f"nobody{uuid.uuid4().hex[:8]}", "password": "wrong-1"},
                    headers=headers,
                )
            ).status_code
            for _ in range(count)
        ]


async def audited_addresses(gateway: LiveGateway) -> list[str]:
    connection = await asyncpg.connect(gateway.settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT client_address FROM audit_log WHERE action = 'login_failed' ORDER BY id"
        )
    finally:
        await connection.close()
    return [row["client_address"] for row in rows]


async def test_the_users_port_speaks_https_with_the_configured_certificate(
    behind_proxy: LiveGateway, certificate: ServerCertificate
) -> None:
    member = await behind_proxy.member()  # logs in over HTTPS, checked against the CA
    async with https(behind_proxy) as client:
        me = await client.get("/api/v1/me", headers=member.headers)
    assert me.status_code == 200, me.text
    assert behind_proxy.url.startswith("https://")
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(behind_proxy.url.replace("https://", "http://") + "/health/live")


async def test_health_and_metrics_are_on_the_operations_port_only(
    behind_proxy: LiveGateway,
) -> None:
    async with https(behind_proxy) as client:
        public = {path: (await client.get(path)).status_code for path in ("/health", "/metrics")}
        live = await client.get("/health/live")
    async with httpx.AsyncClient(base_url=behind_proxy.ops_url, timeout=30) as client:
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        ops_live = await client.get("/health/live")
    assert public == {"/health": 404, "/metrics": 404}
    assert live.status_code == 200
    assert health.status_code == 200, health.text
    assert set(health.json()["checks"]) >= {"database", "redis", "outbox", "inbox"}
    assert metrics.status_code == 200
    # The workers' request counts, summed by the operations port from their files.
    assert "http_requests_total{" in metrics.text
    assert ops_live.status_code == 200


async def test_a_trusted_proxy_names_the_client_for_login_limits_and_audit(
    behind_proxy: LiveGateway,
) -> None:
    statuses = await failed_logins(
        behind_proxy, PER_ADDRESS_ATTEMPTS + 1, **{"X-Forwarded-For": CLIENT}
    )
    other = await failed_logins(behind_proxy, 1, **{"X-Forwarded-For": OTHER_CLIENT})
    # The limit counted the client behind the proxy, not the proxy: another client still may.
    assert statuses[:PER_ADDRESS_ATTEMPTS] == [401] * PER_ADDRESS_ATTEMPTS
    assert statuses[-1] == 429
    assert other == [401]
    addresses = await audited_addresses(behind_proxy)
    assert addresses.count(CLIENT) == PER_ADDRESS_ATTEMPTS + 1  # the refused one too
    assert addresses[-1] == OTHER_CLIENT
    assert "127.0.0.1" not in addresses


@pytest.fixture(scope="module")
def without_trusted_proxy(
    postgres_module_database: MakeDatabase,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    certificate: ServerCertificate,
    behind_proxy: LiveGateway,
) -> Iterator[LiveGateway]:
    """A gateway that trusts a proxy network this test's connections never come from."""
    assert behind_proxy.stop() == 0, behind_proxy.output()  # one live server at a time
    data_dir = tmp_path_factory.mktemp("no-proxy")
    yield from _serve(
        postgres_module_database, redis_server_url, data_dir, certificate, "10.0.0.0/8"
    )


async def test_forwarding_headers_from_anyone_else_change_nothing(
    without_trusted_proxy: LiveGateway,
) -> None:
    spoofed = await failed_logins(
        without_trusted_proxy,
        PER_ADDRESS_ATTEMPTS,
        **{"X-Forwarded-For": CLIENT, "Forwarded": f"for={CLIENT}", "X-Real-IP": CLIENT},
    )
    # A new made-up address each time does not escape the limit of the real one.
    after = await failed_logins(
        without_trusted_proxy, 1, **{"X-Forwarded-For": OTHER_CLIENT, "Forwarded": "for=1.2.3.4"}
    )
    assert spoofed == [401] * PER_ADDRESS_ATTEMPTS
    assert after == [429]
    assert set(await audited_addresses(without_trusted_proxy)) == {"127.0.0.1"}

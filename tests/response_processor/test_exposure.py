"""What `response-processor serve` exposes, and to whom: HTTPS on the admin API's port,
/health and /metrics on the operations port only, X-Forwarded-For believed from trusted
proxies only (the admin API's allowed networks and its audit depend on it)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.response_processor.live import ADMIN_PASSWORD, LiveProcessor, serve_processor
from tests.servicekit.certificates import ServerCertificate, make_server_certificate

LOGIN = "/api/v1/auth/login"
ADMIN_LOGIN = {"username": "admin", "password": ADMIN_PASSWORD}
ADMIN_NETWORK = "203.0.113.0/24"
ADMIN_CLIENT = "203.0.113.40"


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return make_server_certificate(tmp_path / "tls")


def client_of(live: LiveProcessor, certificate: ServerCertificate) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.url, verify=certificate.client_context(), timeout=30)


async def refused_addresses(database_url: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT client_address FROM audit_log WHERE outcome = 'refused' ORDER BY id"
        )
    finally:
        await connection.close()
    return [row["client_address"] for row in rows]


async def test_https_admin_api_and_operations_port_apart(
    tmp_path: Path, database_url: str, redis_url: str, certificate: ServerCertificate
) -> None:
    with serve_processor(
        tmp_path,
        database_url,
        redis_url,
        scheme="https",
        verify=certificate.client_context(),
        PROCESSOR_TLS_CERT_FILE=str(certificate.cert_file),
        PROCESSOR_TLS_KEY_FILE=str(certificate.key_file),
    ) as live:
        async with client_of(live, certificate) as client:
            login = await client.post(LOGIN, json=ADMIN_LOGIN)
            public = {p: (await client.get(p)).status_code for p in ("/health", "/metrics")}
            alive = await client.get("/health/live")
        async with httpx.AsyncClient(base_url=live.ops_url, timeout=30) as client:
            health = await client.get("/health")
            metrics = await client.get("/metrics")
        async with httpx.AsyncClient(timeout=10) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get(live.url.replace("https://", "http://") + "/health/live")
    assert login.status_code == 200, login.text  # over HTTPS, checked against the test CA
    assert public == {"/health": 404, "/metrics": 404}
    assert alive.status_code == 200
    assert health.status_code == 200, health.text
    assert set(health.json()["checks"]) >= {"database", "redis", "outbox", "inbox"}
    assert metrics.status_code == 200
    assert f'path="{LOGIN}"' in metrics.text  # the admin API's requests, counted


async def test_a_trusted_proxy_names_the_client_the_allowed_networks_check(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    with serve_processor(
        tmp_path,
        database_url,
        redis_url,
        PROCESSOR_TRUSTED_PROXIES="127.0.0.1",
        PROCESSOR_ADMIN_ALLOWED_NETWORKS=ADMIN_NETWORK,
    ) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            forwarded = await client.post(
                LOGIN, json=ADMIN_LOGIN, headers={"X-Forwarded-For": ADMIN_CLIENT}
            )
            outside = await client.post(
                LOGIN, json=ADMIN_LOGIN, headers={"X-Forwarded-For": "198.51.100.9"}
            )
            # RFC 7239's header is not read (the servers' wrappers read X-Forwarded-For only).
            other_header = await client.post(
                LOGIN, json=ADMIN_LOGIN, headers={"Forwarded": f"for={ADMIN_CLIENT}"}
            )
    assert forwarded.status_code == 200, forwarded.text
    assert outside.status_code == 403
    assert outside.json()["error"]["code"] == "address_not_allowed"
    assert other_header.status_code == 403
    assert await refused_addresses(database_url) == ["198.51.100.9", "127.0.0.1"]


async def test_forwarding_headers_from_an_untrusted_peer_change_nothing(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    with serve_processor(
        tmp_path,
        database_url,
        redis_url,
        PROCESSOR_TRUSTED_PROXIES="10.0.0.0/8",
        PROCESSOR_ADMIN_ALLOWED_NETWORKS=ADMIN_NETWORK,
    ) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            spoofed = await client.post(
                LOGIN,
                json=ADMIN_LOGIN,
                headers={
                    "X-Forwarded-For": ADMIN_CLIENT,
                    "Forwarded": f"for={ADMIN_CLIENT}",
                    "X-Real-IP": ADMIN_CLIENT,
                },
            )
    assert spoofed.status_code == 403
    assert await refused_addresses(database_url) == ["127.0.0.1"]

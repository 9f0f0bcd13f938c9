from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from litestar import Litestar, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.params import FromPath, RawBody
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from servicekit.health import HealthCheck
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from tests.servicekit.log_capture import LogCapture

API_KEY = "test-api-key-123"


class ApiKeyAuthentication(AbstractAuthenticationMiddleware):
    """A real authentication middleware, as a service would add one."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        if connection.headers.get("X-API-Key") != API_KEY:
            raise NotAuthorizedException("Missing or wrong API key")
        return AuthenticationResult(user="bob", auth=None)


@get("/items/{item_id:int}")
async def read_item(item_id: FromPath[int]) -> dict[str, int]:
    return {"id": item_id}


@post("/notes")
async def add_note(body: RawBody) -> dict[str, int]:
    return {"bytes": len(body)}


async def _database_up() -> str | None:
    return "up"


async def _queue_down() -> str | None:
    raise ConnectionError("queue unreachable")


def _checks(*checks: HealthCheck) -> Any:
    def provide(app: Litestar) -> Sequence[HealthCheck]:
        return checks

    return provide


def _app(config: ServiceKitConfig) -> Litestar:
    return Litestar(
        [read_item, add_note],
        middleware=[DefineMiddleware(ApiKeyAuthentication)],
        plugins=[ServiceKitPlugin(config)],
    )


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    config = ServiceKitConfig(
        service="test-gateway",
        health_checks=_checks(HealthCheck("database", _database_up)),
        cors_origins=["https://app.example"],
        metrics_prefix="sk_plugin_test",
    )
    async with AsyncTestClient(_app(config)) as test_client:
        yield test_client


def _request_counts(body: str) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["path"], sample.labels["status_code"]): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "sk_plugin_test_requests_total"
    }


async def test_health_reports_each_check(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["detail"] == "up"


async def test_health_is_503_when_a_critical_check_fails() -> None:
    config = ServiceKitConfig(
        service="test-gateway",
        health_checks=_checks(HealthCheck("queue", _queue_down), HealthCheck("db", _database_up)),
    )
    async with AsyncTestClient(_app(config)) as test_client:
        response = await test_client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"]["queue"]["detail"] == "ConnectionError: queue unreachable"


async def test_liveness_is_always_ok(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_operational_endpoints_need_no_authentication_but_the_api_does(
    client: AsyncTestClient[Litestar],
) -> None:
    for path in ("/health", "/health/live", "/metrics"):
        assert (await client.get(path)).status_code == 200

    refused = await client.get("/items/1")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert refused.headers["x-request-id"]
    allowed = await client.get("/items/1", headers={"X-API-Key": API_KEY})
    assert allowed.status_code == 200


async def test_metrics_count_requests_by_route_template_and_status_without_probes(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = {"X-API-Key": API_KEY}
    for item_id in (1, 2, 3):
        await client.get(f"/items/{item_id}", headers=headers)
    await client.get("/health")

    response = await client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    counts = _request_counts(response.text)
    assert counts[("/items/{item_id}", "200")] >= 3
    assert not any(path.startswith(("/health", "/metrics")) for path, _ in counts)
    assert not any(path == "/items/1" for path, _ in counts)


async def test_metrics_count_requests_refused_by_a_middleware_with_their_status(
    client: AsyncTestClient[Litestar],
) -> None:
    # Authentication raises inside the metrics middleware; its 401 must not count as a 200.
    before = _request_counts((await client.get("/metrics")).text)
    refused = await client.get("/items/7")
    assert refused.status_code == 401
    counts = _request_counts((await client.get("/metrics")).text)
    key = ("/items/{item_id}", "401")
    assert counts[key] == before.get(key, 0) + 1
    assert counts.get(("/items/{item_id}", "200"), 0) == before.get(("/items/{item_id}", "200"), 0)


async def test_cors_answers_only_configured_origins(client: AsyncTestClient[Litestar]) -> None:
    preflight = {"Access-Control-Request-Method": "GET"}
    allowed = await client.options(
        "/items/1", headers={"Origin": "https://app.example", **preflight}
    )
    other = await client.options(
        "/items/1", headers={"Origin": "https://evil.example", **preflight}
    )

    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_without_configured_origins() -> None:
    async with AsyncTestClient(_app(ServiceKitConfig(service="test-gateway"))) as test_client:
        response = await test_client.get("/health/live", headers={"Origin": "https://a.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_bodies_over_the_configured_limit_are_refused() -> None:
    config = ServiceKitConfig(service="test-gateway", max_body_bytes=10)
    headers = {"X-API-Key": API_KEY}
    async with AsyncTestClient(_app(config)) as test_client:
        accepted = await test_client.post("/notes", content=b"x" * 10, headers=headers)
        refused = await test_client.post("/notes", content=b"x" * 11, headers=headers)
    assert accepted.status_code == 201
    assert refused.status_code == 413


async def test_errors_and_access_lines_use_the_shared_shape(
    client: AsyncTestClient[Litestar], log_capture: LogCapture
) -> None:
    response = await client.get("/nowhere")

    assert response.json() == {
        "error": {"code": "not_found", "message": "Not Found", "details": None}
    }
    assert response.headers["cache-control"] == "no-store"
    [line] = log_capture.events("request")
    assert line["status"] == 404


def test_litestars_own_logging_configuration_is_switched_off() -> None:
    app = _app(ServiceKitConfig(service="test-gateway"))
    assert app.logging_config is None


async def test_the_configured_body_limit_is_the_only_one_above_litestars_default() -> None:
    # Litestar's own limit (10,000,000 bytes) used to refuse bodies the setting allowed.
    config = ServiceKitConfig(service="test-gateway", max_body_bytes=16 * 1024 * 1024)
    headers = {"X-API-Key": API_KEY}
    async with AsyncTestClient(_app(config)) as test_client:
        accepted = await test_client.post("/notes", content=b"x" * 12_000_000, headers=headers)
        refused = await test_client.post(
            "/notes", content=b"x" * (16 * 1024 * 1024 + 1), headers=headers
        )
    assert accepted.status_code == 201
    assert accepted.json() == {"bytes": 12_000_000}
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"

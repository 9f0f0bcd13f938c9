"""Without Redis the gateway says it is degraded, and submits follow the configured choice."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from request_gateway.app import create_app
from request_gateway.settings import GatewaySettings
from tests.request_gateway.conftest import MakeMember, with_operations

DEAD_REDIS = "redis://127.0.0.1:9/0"  # the discard port: nothing answers there


@pytest.mark.parametrize(("choice", "status"), [("open", 202), ("closed", 503)])
async def test_submits_follow_the_setting_while_redis_is_down(
    settings: GatewaySettings, make_member: MakeMember, choice: str, status: int
) -> None:
    member = await make_member()
    cut_off = msgspec.structs.replace(
        settings, redis_url=DEAD_REDIS, rate_limit_on_redis_error=choice
    )
    async with AsyncTestClient(create_app(cut_off)) as client:
        health = await with_operations(client).get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["checks"]["redis"]["status"] == "fail"
        response = await client.post(
            "/api/v1/requests", json={"type": "echo", "payload": {}}, headers=member.headers
        )
        assert response.status_code == status, response.text
        if status == 503:
            assert response.json()["error"]["code"] == "rate_limit_unavailable"
        else:
            assert "ratelimit" not in response.headers  # no limit was applied

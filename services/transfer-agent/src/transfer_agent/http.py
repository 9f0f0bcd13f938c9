"""The agent's small HTTP surface: /health, /health/live and /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from litestar import Litestar

from servicekit.health import HealthCheck, folder_check
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from transfer_agent.route import RouteRunner


def route_checks(runners: Sequence[RouteRunner]) -> list[HealthCheck]:
    """Per route: both folders readable and writable (critical), and not paused for space."""
    checks: list[HealthCheck] = []
    for runner in runners:
        config = runner.config
        checks += [
            folder_check(config.source, min_free_bytes=0, name=f"{runner.name}:source"),
            folder_check(config.destination, min_free_bytes=0, name=f"{runner.name}:destination"),
            HealthCheck(f"{runner.name}:delivery", _delivery_state(runner), critical=False),
        ]
    return checks


def _delivery_state(runner: RouteRunner) -> Callable[[], Awaitable[str | None]]:
    async def check() -> str | None:
        if runner.paused:
            raise RuntimeError(
                "paused: the destination is below its free-space threshold "
                f"({runner.config.min_free_bytes} bytes); resumes by itself"
            )
        if runner.last_delivery_at is None:
            return "no delivery yet since start"
        return f"last delivery at {runner.last_delivery_at:.0f} (unix time)"

    return check


def build_app(runners: Sequence[RouteRunner]) -> Litestar:
    """The Litestar app serving the agent's operational endpoints."""
    checks = route_checks(runners)
    return Litestar(
        plugins=[
            ServiceKitPlugin(
                ServiceKitConfig(service="transfer-agent", health_checks=lambda app: checks)
            )
        ],
        openapi_config=None,
    )

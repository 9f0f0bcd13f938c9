"""What a daemon (a worker, not the API server) needs to serve and to loop.

uvicorn inside a process that has its own event loop and signal handling, the operational
app it serves, and periodic tasks that survive their own failures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence

import structlog
import uvicorn
from litestar import Litestar

from servicekit.health import HealthCheck
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin

log = structlog.get_logger("servicekit.server")


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server for a daemon's operational endpoints; the daemon handles signals.

    Run `serve()` as a task of the daemon's loop and set `should_exit` to stop it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave SIGTERM and SIGINT to the daemon (uvicorn would re-raise them at exit)."""
        yield


def embedded_server(app: Litestar, host: str, port: int) -> EmbeddedServer:
    """A quiet server for `app`: servicekit logs the requests, not uvicorn."""
    return EmbeddedServer(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    )


def operational_app(service: str, health_checks: Callable[[], Sequence[HealthCheck]]) -> Litestar:
    """A daemon's operational endpoints alone: /health, /health/live and /metrics."""
    return Litestar(
        plugins=[
            ServiceKitPlugin(
                ServiceKitConfig(service=service, health_checks=lambda app: health_checks())
            )
        ],
        openapi_config=None,
    )


async def run_every(
    interval_s: float, action: Callable[[], Awaitable[None]], stop: asyncio.Event, name: str
) -> None:
    """Run `action` now and every `interval_s` until `stop`; a failure is logged and retried."""
    while not stop.is_set():
        try:
            await action()
        except Exception as exc:
            log.error(f"{name}_failed", error=f"{type(exc).__name__}: {exc}")
        try:
            async with asyncio.timeout(interval_s):
                await stop.wait()
        except TimeoutError:
            pass

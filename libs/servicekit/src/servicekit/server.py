"""What a daemon needs to serve its operational endpoints, and to loop.

uvicorn inside a process that has its own event loop and signal handling, the operational
app it serves (/health, /health/live, /metrics), and periodic tasks that survive their own
failures. A worker serves the operational app on its own port; an API server serves it on
its operations port, beside the public port (`listening_socket` binds it at start, so a port
in use fails the command at once), from its own loop (uvicorn) or from `OperationsThread`
(granian, which keeps the main thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

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


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` and listening (OSError if the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


def startup_check() -> HealthCheck:
    """The check an operations port reports until the app's runtime exists: failing."""

    async def check() -> str | None:
        raise RuntimeError("starting")

    return HealthCheck("startup", check)


def runtime_health_checks(
    app: Litestar, checks: Callable[[Any], Sequence[HealthCheck]]
) -> Callable[[], Sequence[HealthCheck]]:
    """`checks` of the runtime that `app`'s lifespan keeps in ``app.state.runtime``."""

    def provider() -> Sequence[HealthCheck]:
        runtime = getattr(app.state, "runtime", None)
        return [startup_check()] if runtime is None else checks(runtime)

    return provider


class OperationsThread(threading.Thread):
    """An operational app served from a thread with its own event loop, on a bound socket.

    For a server that keeps the main thread and its signals (granian's supervisor): `open_app`
    builds the app (and closes what it needs) in the thread's loop; `stop` ends it.
    """

    def __init__(
        self,
        sock: socket.socket,
        open_app: Callable[[], contextlib.AbstractAsyncContextManager[Litestar]],
    ) -> None:
        super().__init__(name="operations", daemon=True)
        self._sock = sock
        self._open_app = open_app
        self._server: EmbeddedServer | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        """Serve until `stop` (a failure is logged: the public port keeps serving)."""
        try:
            asyncio.run(self._serve())
        except Exception as exc:
            log.error("operations_failed", error=f"{type(exc).__name__}: {exc}")

    async def _serve(self) -> None:
        async with self._open_app() as app:
            host, port = self._sock.getsockname()[:2]
            self._server = embedded_server(app, host, port)
            if not self._stopping.is_set():
                await self._server.serve(sockets=[self._sock])

    def stop(self, timeout_s: float) -> None:
        """Ask the server to finish and wait up to `timeout_s` for the thread."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        self.join(timeout_s)


def operational_app(service: str, health_checks: Callable[[], Sequence[HealthCheck]]) -> Litestar:
    """The operational endpoints alone: /health, /health/live and /metrics."""
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

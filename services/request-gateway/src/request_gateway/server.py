"""`request-gateway serve`: the API under granian, in one or several worker processes.

The parent process resolves the database and Redis (starting embedded servers when no URL
is set, once, for every worker), applies migrations once, prepares the Prometheus
multiprocess folder, and hands the URLs to the workers in their environment; each worker
builds the app with `app_from_environment`.

The users' port serves the API and `/health/live` only (HTTPS with a certificate, which
production requires unless a proxy in front terminates TLS). `/health` and `/metrics` are
on the operations port (GATEWAY_OPS_PORT), served by the parent from a thread of its own:
its `/metrics` sums the workers' multiprocess files, its `/health` runs the checks over a
runtime of its own.

Workers are spawned, not forked: prometheus-client picks its multiprocess mode when it is
first imported, and the parent has imported it (with the mode off) long before it knows
how many workers it will run. A spawned worker starts a fresh interpreter that sees
`PROMETHEUS_MULTIPROC_DIR` from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import msgspec
from granian import Granian
from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from litestar import Litestar

from airlink.endpoint import load_link_encryption, load_link_keys
from request_gateway.app import SERVICE
from request_gateway.health import health_checks
from request_gateway.runtime import embedded_services, open_runtime, prepare_database
from request_gateway.settings import PREFIX, GatewaySettings
from servicekit.exposure import check_api_start
from servicekit.metrics import prepare_multiprocess_dir
from servicekit.server import OperationsThread, listening_socket, operational_app

APP_FACTORY = "request_gateway.app:app_from_environment"
OPS_STOP_TIMEOUT_S = 10.0


def serve(settings: GatewaySettings) -> None:
    """Serve until SIGTERM or SIGINT (granian stops its workers; lifespans close runtimes)."""
    check_api_start(settings, PREFIX)
    ops_socket = listening_socket(settings.ops_host or settings.host, settings.ops_port)
    services = embedded_services(settings)
    operations: OperationsThread | None = None
    try:
        asyncio.run(prepare_database(services.database_url))
        # Made here, once: workers starting together would each make their own key pair.
        load_link_keys(settings, generate_missing=settings.env != "production")
        load_link_encryption(settings, generate_missing=settings.env != "production")
        # The workers read the resolved URLs; a *_FILE variable beside them would make their
        # settings refuse to load ("set both directly and as ..._FILE"), as in compose.
        for name, url in (
            ("DATABASE_URL", services.database_url),
            ("REDIS_URL", services.redis_url),
        ):
            os.environ.pop(f"{PREFIX}{name}_FILE", None)
            os.environ[f"{PREFIX}{name}"] = url
        # Always: the operations port, in this process, reads the workers' samples there.
        prepare_multiprocess_dir(settings.data_dir / "metrics")
        resolved = msgspec.structs.replace(
            settings, database_url=services.database_url, redis_url=services.redis_url
        )
        operations = OperationsThread(ops_socket, partial(_operations_app, resolved))
        operations.start()
        multiprocessing.set_start_method("spawn", force=True)
        server = Granian(
            APP_FACTORY,
            factory=True,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=settings.workers,
            loop=Loops.auto,
            log_enabled=False,  # servicekit logs each request itself
            respawn_failed_workers=True,
            # Requests in progress per worker: more connections wait in the backlog instead
            # of starving the ones in progress; the body timeout (servicekit) frees them.
            backpressure=settings.max_connections,
            # Granian's header timeout also ends idle keep-alive connections.
            http1_settings=HTTP1Settings(header_read_timeout=settings.idle_timeout_s * 1000),
            ssl_cert=_path(settings.tls_cert_file),
            ssl_key=_path(settings.tls_key_file),
        )
        server.serve()
    finally:
        if operations is not None:
            operations.stop(OPS_STOP_TIMEOUT_S)
        ops_socket.close()
        services.stop()


@contextlib.asynccontextmanager
async def _operations_app(settings: GatewaySettings) -> AsyncIterator[Litestar]:
    """The operations port's app, over a runtime of its own (no identity listener)."""
    async with open_runtime(settings, listen=False) as runtime:
        yield operational_app(SERVICE, lambda: health_checks(runtime))


def _path(value: Path | None) -> Path | None:
    return value.resolve() if value is not None else None

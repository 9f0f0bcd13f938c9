"""`request-gateway serve`: the API under granian, in one or several worker processes.

The parent process resolves the database and Redis (starting embedded servers when no URL
is set, once, for every worker), applies migrations once, prepares the Prometheus
multiprocess folder when there are several workers, and hands the URLs to the workers in
their environment; each worker builds the app with `app_from_environment`.

Workers are spawned, not forked: prometheus-client picks its multiprocess mode when it is
first imported, and the parent has imported it (with the mode off) long before it knows
how many workers it will run. A spawned worker starts a fresh interpreter that sees
`PROMETHEUS_MULTIPROC_DIR` from the start.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path

from granian import Granian
from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings

from airlink.endpoint import load_link_keys
from request_gateway.runtime import embedded_services, prepare_database
from request_gateway.settings import PREFIX, GatewaySettings
from servicekit.metrics import prepare_multiprocess_dir

APP_FACTORY = "request_gateway.app:app_from_environment"


def serve(settings: GatewaySettings) -> None:
    """Serve until SIGTERM or SIGINT (granian stops its workers; lifespans close runtimes)."""
    services = embedded_services(settings)
    try:
        asyncio.run(prepare_database(services.database_url))
        # Made here, once: workers starting together would each make their own key pair.
        load_link_keys(settings, generate_missing=settings.env != "production")
        # The workers read the resolved URLs; a *_FILE variable beside them would make their
        # settings refuse to load ("set both directly and as ..._FILE"), as in compose.
        for name, url in (
            ("DATABASE_URL", services.database_url),
            ("REDIS_URL", services.redis_url),
        ):
            os.environ.pop(f"{PREFIX}{name}_FILE", None)
            os.environ[f"{PREFIX}{name}"] = url
        if settings.workers > 1:
            prepare_multiprocess_dir(settings.data_dir / "metrics")
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
        services.stop()


def _path(value: Path | None) -> Path | None:
    return value.resolve() if value is not None else None

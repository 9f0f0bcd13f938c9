"""`response-processor serve`: the admin API under uvicorn, and its operations port.

The admin API's port serves the API and `/health/live`; `/health` and `/metrics` are on the
operations port (PROCESSOR_OPS_PORT), served from the same event loop. HTTPS when given a
certificate (required in production unless a proxy in front terminates TLS). The client's
address comes from X-Forwarded-For only when the connection comes from a trusted proxy
(PROCESSOR_TRUSTED_PROXIES): the admin API's allowed networks, login limits and audit rely
on it.
"""

from __future__ import annotations

import asyncio

import uvicorn

from response_processor.app import create_app, operations_app
from response_processor.settings import PREFIX, ProcessorSettings
from servicekit.exposure import check_api_start, parse_proxies
from servicekit.server import embedded_server, listening_socket


async def serve(settings: ProcessorSettings) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's graceful shutdown closes the runtime)."""
    check_api_start(settings, PREFIX)
    ops_socket = listening_socket(settings.ops_host or settings.host, settings.ops_port)
    app = create_app(settings)
    api = uvicorn.Server(_api_config(settings, app))
    ops = embedded_server(
        operations_app(app), settings.ops_host or settings.host, settings.ops_port
    )
    ops_task = asyncio.create_task(ops.serve(sockets=[ops_socket]))
    try:
        await api.serve()
    finally:
        ops.should_exit = True
        await ops_task


def _api_config(settings: ProcessorSettings, app: object) -> uvicorn.Config:
    proxies = [str(network) for network in parse_proxies(settings.trusted_proxies)]
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_config=None,  # servicekit's logging is already configured
        access_log=False,  # servicekit logs one line per request itself
        lifespan="on",
        # uvicorn answers 503 itself beyond this many connections; the body timeout
        # (servicekit) frees the ones a client holds open without sending its body.
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.idle_timeout_s,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        # Without trusted proxies no header names the client (uvicorn's own default would
        # trust 127.0.0.1, or FORWARDED_ALLOW_IPS from the environment).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
    )

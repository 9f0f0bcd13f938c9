"""`response-processor serve`: the admin API under uvicorn (HTTPS when given a certificate)."""

from __future__ import annotations

import uvicorn

from response_processor.app import create_app
from response_processor.settings import ProcessorSettings


async def serve(settings: ProcessorSettings) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's graceful shutdown closes the runtime)."""
    config = uvicorn.Config(
        create_app(settings),
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
    )
    await uvicorn.Server(config).serve()

"""`response-processor serve`: the admin API under uvicorn."""

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
    )
    await uvicorn.Server(config).serve()

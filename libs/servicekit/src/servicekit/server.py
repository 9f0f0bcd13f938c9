"""uvicorn inside a process that has its own event loop and signal handling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from litestar import Litestar


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

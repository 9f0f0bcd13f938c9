"""Prometheus metrics for one process or for several worker processes of one server.

This module imports Litestar only to build the ``/metrics`` handler, so that worker
processes (arq, the transfer agent) declare their metrics without loading a web framework.

Multiprocess mode is prometheus-client's: each process writes its samples to files under
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them. prometheus-client chooses the mode
when it is first imported, so `prepare_multiprocess_dir` belongs in the parent process
*before* it starts its workers (a server's CLI entry point), never inside a worker.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

__all__ = [
    "MULTIPROCESS_ENV",
    "GaugeMode",
    "declare_gauge",
    "mark_worker_dead",
    "metrics_handler",
    "prepare_multiprocess_dir",
    "render_metrics",
]

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

GaugeMode = Literal["livesum", "liveall", "livemax", "livemin", "max", "min", "sum", "mostrecent"]
"""How a gauge combines its per-process values in multiprocess mode.

``live*`` modes forget the values of dead workers (use for in-flight counts, queue sizes
seen by a worker); ``max``/``min``/``sum`` keep them; ``mostrecent`` reports the last value
set by any process (use for "last seen" timestamps).
"""


def prepare_multiprocess_dir(path: Path) -> Path:
    """Create and clear the multiprocess folder and point ``PROMETHEUS_MULTIPROC_DIR`` at it."""
    path.mkdir(parents=True, exist_ok=True)
    # Files left by a previous run would be summed into this run's counters. Only the
    # library's own files are removed, in case the path was misconfigured to a shared folder.
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(path)
    return path


def mark_worker_dead(pid: int) -> None:
    """Forget a dead worker's ``live*`` gauge values (call from the supervisor when it exits)."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def declare_gauge(
    name: str,
    documentation: str,
    *,
    multiprocess_mode: GaugeMode,
    labelnames: Sequence[str] = (),
    registry: CollectorRegistry | None = REGISTRY,
) -> Gauge:
    """Declare a gauge that reads correctly both in one process and summed across workers."""
    # The mode is required here because prometheus-client's default ("all") exports one
    # series per pid, which is almost never what a dashboard wants.
    return Gauge(
        name,
        documentation,
        labelnames=labelnames,
        registry=registry,
        multiprocess_mode=multiprocess_mode,
    )


def render_metrics() -> tuple[bytes, str]:
    """Render every metric in the Prometheus text format: (body, content type)."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def metrics_handler(path: str = "/metrics") -> HTTPRouteHandler:
    """Build the ``GET /metrics`` route handler."""
    from litestar import Response, get

    from servicekit.middleware import PUBLIC_ENDPOINT_OPT

    @get(
        path,
        opt=dict(PUBLIC_ENDPOINT_OPT),
        include_in_schema=False,
        name="metrics",
        # Litestar resolves the return annotation by name; Response is imported locally.
        signature_namespace={"Response": Response},
    )
    async def metrics() -> Response[bytes]:
        """Serve every metric in the Prometheus text format."""
        # Multiprocess mode reads one file per worker and metric: off the event loop.
        body, content_type = await asyncio.to_thread(render_metrics)
        return Response(body, media_type=content_type)

    return metrics

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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.handlers import HTTPRouteHandler

__all__ = [
    "MULTIPROCESS_ENV",
    "GaugeMode",
    "ProcessTreeCollector",
    "declare_gauge",
    "mark_worker_dead",
    "metrics_handler",
    "prepare_multiprocess_dir",
    "register_local_collector",
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


class ProcessTreeCollector(Collector):
    """``process_tree_resident_memory_bytes``: this process's resident memory and its
    descendants' (Linux /proc), read at each scrape.

    A server that runs its workers as child processes (the gateway API with GATEWAY_WORKERS
    > 1) exports no ``process_*`` metrics in multiprocess mode; this gauge, read in the
    supervisor that serves /metrics, is the memory of all of them together.
    """

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = proc

    def collect(self) -> list[GaugeMetricFamily]:
        """One sample, or none where /proc cannot be read."""
        total = self.resident_bytes(os.getpid())
        if total is None:
            return []
        family = GaugeMetricFamily(
            "process_tree_resident_memory_bytes",
            "Resident memory of this process and all its descendants, in bytes.",
        )
        family.add_metric([], total)
        return [family]

    def resident_bytes(self, root: int) -> int | None:
        """The resident bytes of ``root`` and its descendants; None without /proc."""
        children: dict[int, list[int]] = {}
        try:
            entries = [e for e in os.scandir(self._proc) if e.name.isdigit()]
        except OSError:
            return None
        for entry in entries:
            parent = self._parent(entry.path)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
        total, pending = 0, [root]
        page = os.sysconf("SC_PAGE_SIZE")
        while pending:
            pid = pending.pop()
            try:
                total += int((self._proc / str(pid) / "statm").read_text().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
            pending.extend(children.get(pid, ()))
        return total

    @staticmethod
    def _parent(path: str) -> int | None:
        try:
            with open(f"{path}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
        except OSError:
            return None
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so from the last ")".
        fields = text[text.rfind(")") + 2 :].split()
        return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


_LOCAL_COLLECTORS: list[Collector] = []


def register_local_collector(collector: Collector) -> None:
    """Export `collector`'s samples as this process measures them, in both modes.

    For figures only the process serving /metrics measures (its health checks, its process
    tree): they are read from this process at each scrape, never written to the
    multiprocess files, so a server's workers (which declare but never measure them) add
    nothing, and a supervisor that imported prometheus-client before
    `prepare_multiprocess_dir` still exports them.
    """
    _LOCAL_COLLECTORS.append(collector)
    REGISTRY.register(collector)


register_local_collector(ProcessTreeCollector())


def render_metrics() -> tuple[bytes, str]:
    """Render every metric in the Prometheus text format: (body, content type)."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for collector in _LOCAL_COLLECTORS:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def metrics_handler(
    path: str = "/metrics", *, before_render: Callable[[Litestar], Awaitable[None]] | None = None
) -> HTTPRouteHandler:
    """Build the ``GET /metrics`` route handler; ``before_render(app)`` runs first (to bring
    gauges measured on demand, such as the health checks', up to date)."""
    from litestar import Request, Response, get

    from servicekit.middleware import PUBLIC_ENDPOINT_OPT

    @get(
        path,
        opt=dict(PUBLIC_ENDPOINT_OPT),
        include_in_schema=False,
        name="metrics",
        # Litestar resolves the return annotation by name; Response is imported locally.
        signature_namespace={"Response": Response, "Request": Request},
    )
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Serve every metric in the Prometheus text format."""
        if before_render is not None:
            await before_render(request.app)
        # Multiprocess mode reads one file per worker and metric: off the event loop.
        body, content_type = await asyncio.to_thread(render_metrics)
        return Response(body, media_type=content_type)

    return metrics

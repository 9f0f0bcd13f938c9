"""One route at run time: claim what is ready, deliver it, and say what happened."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from batchformat import IgnoredEntry, TrustedKeys
from batchformat.claims import ClaimFolder
from transfer_agent import metrics
from transfer_agent.config import RouteConfig
from transfer_agent.delivery import Cancelled, Delivery, Outcome, RouteDelivery

ARCHIVE_PURGE_INTERVAL_S: Final = 3600.0

log = structlog.get_logger("transfer_agent.route")


@dataclass(frozen=True, slots=True)
class DrainResult:
    """How a pass over the route ended."""

    delivered: int
    paused: bool  # waiting for free space at the destination


class RouteRunner:
    """Delivers one route's batches; its blocking methods run in a worker thread."""

    def __init__(self, config: RouteConfig, agent_id: str) -> None:
        self.config = config
        self.name = config.name
        self.delivery = RouteDelivery(config, TrustedKeys.from_files(config.trusted_keys))
        self.claims = ClaimFolder(config.in_flight_root, agent_id)
        self.paused = False
        self.last_delivery_at: float | None = None
        self._reported_ignored: set[str] = set()
        self._own_folders = {
            config.in_flight_root.name,
            config.quarantine_path.name,
            config.archive_path.name,
        }
        self._next_purge = 0.0
        self._log = log.bind(route=self.name)

    def open(self) -> None:
        """Take this agent's claim folder under the route's source."""
        self.claims.open()
        for gauge in (metrics.IN_FLIGHT, metrics.PAUSED):
            gauge.labels(self.name).set(0)

    def close(self) -> None:
        """Release the claim folder (batches still in it are adopted by the next start)."""
        self.claims.close()

    def drain(self, cancel: threading.Event) -> DrainResult:
        """Deliver everything deliverable now, oldest claims first, then ready batches in order."""
        delivered = 0
        for in_flight in [*self.claims.batches(), *self._adopt_orphans()]:
            outcome = self._deliver(in_flight, cancel)
            if outcome is None:
                return DrainResult(delivered, self.paused)
            delivered += outcome is Outcome.DELIVERED
        while not cancel.is_set():
            scan = self.delivery.zone.scan()
            self._report_ignored(scan.ignored)
            claimed_any = False
            for ready in scan.ready:
                claimed = self.delivery.zone.claim(ready, self.claims.path)
                if claimed is None:
                    continue  # another agent was faster
                claimed_any = True
                metrics.IN_FLIGHT.labels(self.name).inc()
                outcome = self._deliver(claimed, cancel, ready.arrived_at)
                if outcome is None:
                    return DrainResult(delivered, self.paused)
                delivered += outcome is Outcome.DELIVERED
            if not claimed_any:
                break
        self._housekeeping()
        return DrainResult(delivered, self.paused)

    def _deliver(
        self, claimed: Path, cancel: threading.Event, arrived_at: float | None = None
    ) -> Outcome | None:
        """Deliver one claimed batch; None means stop this pass (paused, failing, shutdown)."""
        try:
            result = self.delivery.deliver(claimed, cancel, arrived_at)
        except Cancelled:
            self._log.info("delivery_abandoned", batch=claimed.name, why="shutting down")
            return None
        except OSError as exc:
            self._log.error(
                "delivery_failed", batch=claimed.name, error=f"{type(exc).__name__}: {exc}"
            )
            return None
        self._record(result)
        if result.outcome is Outcome.NO_SPACE:
            return None
        if result.outcome is not Outcome.BUSY:
            metrics.IN_FLIGHT.labels(self.name).dec()
        return result.outcome

    def _record(self, result: Delivery) -> None:
        fields = {
            "batch_id": str(result.name.batch_id),
            "source": result.name.source,
            "seq": result.name.seq,
            "bytes": result.size_bytes,
            "duration_ms": round(result.seconds * 1000, 1),
        }
        route = self.name
        if result.outcome is Outcome.NO_SPACE:
            if not self.paused:
                self._log.warning(
                    "route_paused",
                    reason="destination below its free-space threshold",
                    min_free_bytes=self.config.min_free_bytes,
                    **fields,
                )
            self._set_paused(True)
            return
        self._set_paused(False)
        if result.outcome is Outcome.DELIVERED:
            metrics.BATCHES_DELIVERED.labels(route).inc()
            metrics.BYTES_DELIVERED.labels(route).inc(result.size_bytes)
            metrics.COPY_SECONDS.labels(route).observe(result.seconds)
            delay_ms = None
            if result.delay_seconds is not None:
                metrics.DELIVERY_DELAY.labels(route).observe(result.delay_seconds)
                delay_ms = round(result.delay_seconds * 1000)
            self.last_delivery_at = time.time()
            metrics.LAST_DELIVERY.labels(route).set(self.last_delivery_at)
            self._log.info("batch_delivered", delay_ms=delay_ms, **fields)
        elif result.outcome is Outcome.ALREADY_DELIVERED:
            metrics.ALREADY_DELIVERED.labels(route).inc()
            self._log.info("batch_already_delivered", **fields)
        elif result.outcome is Outcome.QUARANTINED:
            assert result.rejection is not None
            metrics.REJECTS.labels(route, str(result.rejection.reason)).inc()
            self._log.warning(
                "batch_quarantined",
                code=str(result.rejection.reason),
                reason=result.rejection.message,
                line=result.rejection.line,
                **fields,
            )
        elif result.outcome is Outcome.BUSY:
            self._log.info("batch_busy", why="another process is writing it", **fields)

    def _set_paused(self, paused: bool) -> None:
        if self.paused and not paused:
            self._log.info("route_resumed")
        self.paused = paused
        metrics.PAUSED.labels(self.name).set(int(paused))

    def _adopt_orphans(self) -> list[Path]:
        adopted = self.claims.adopt_orphans()
        if adopted:
            metrics.IN_FLIGHT.labels(self.name).inc(len(adopted))
            self._log.info("claims_adopted", count=len(adopted), why="their agent died")
        return adopted

    def _report_ignored(self, entries: list[IgnoredEntry]) -> None:
        """Log and count each stray entry once, for as long as it stays."""
        current = set()
        for entry in entries:
            if entry.name in self._own_folders or entry.kind == "in_progress":
                continue
            current.add(entry.name)
            if entry.name not in self._reported_ignored:
                metrics.IGNORED_ENTRIES.labels(self.name, str(entry.kind)).inc()
                self._log.warning("entry_ignored", entry=entry.name, kind=str(entry.kind))
        self._reported_ignored = current

    def _housekeeping(self) -> None:
        # An unreadable destination is the health check's to report.
        with contextlib.suppress(OSError):
            metrics.DESTINATION_FREE_BYTES.labels(self.name).set(self.delivery.free_bytes())
        now = time.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + ARCHIVE_PURGE_INTERVAL_S
            purged = self.delivery.purge_archive()
            if purged:
                self._log.info("archive_purged", count=purged, days=self.config.archive_days)

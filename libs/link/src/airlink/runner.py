"""`Link`: what a service builds once to export, import and watch the link to its peer.

`run(stop)` runs the exporter every `export_window_s` and the importer on inbox events
(watchfiles) and every `sweep_interval_s`, until `stop` is set. File work runs in threads.
Several processes may run it against the same database and folders at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Generic

import structlog
from watchfiles import Change, awatch

from airlink.encryption import PLAINTEXT, LinkEncryption
from airlink.export import Exporter, ExportReport
from airlink.health import link_health_check
from airlink.inbox import Importer, ImportReport
from airlink.service import Effect, In, LinkService, Sent
from airlink.settings import LinkSettings
from airlink.state import LinkState, ensure_peer, read_link_state, set_gauges
from batchformat import BatchName, SigningKey, TrustedKeys
from servicekit.database import Pool
from servicekit.health import HealthCheck
from servicekit.server import run_every

# watchfiles yields once no new event came for STEP_MS, at most DEBOUNCE_MS after the first.
WATCH_STEP_MS: Final = 20
WATCH_DEBOUNCE_MS: Final = 200
WATCH_RETRY_S: Final = 5.0
# `LinkService.stage` is asked for this many records per transaction, this many per pass:
# a backlog drains over several passes, none of them one huge transaction.
STAGE_CHUNK: Final = 10_000
STAGED_PER_PASS: Final = 50_000

Clock = Callable[[], datetime]

log = structlog.get_logger("airlink")


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


class Link(Generic[In, Sent, Effect]):
    """One side of the link, for one peer: exporter, importer, state and health, around the
    `service` it serves. Passing `peer_keys=None` turns signature checks off (development)."""

    def __init__(
        self,
        pool: Pool,
        settings: LinkSettings,
        service: LinkService[In, Sent, Effect],
        *,
        signing_key: SigningKey,
        peer_keys: TrustedKeys | None,
        encryption: LinkEncryption = PLAINTEXT,
        clock: Clock = utc_now,
    ) -> None:
        self.pool = pool
        self.service = service
        self.settings = settings
        self.clock = clock
        self.exporter = Exporter(pool, settings, signing_key, encryption.recipients)
        self.importer = Importer(pool, settings, peer_keys, service, encryption)
        self._ready = False
        if peer_keys is None:
            log.warning("link_signatures_unchecked", peer=settings.peer_network_id)

    async def export_once(self, now: datetime | None = None) -> ExportReport:
        """One exporter pass: stage, recover, resend, make and publish batches."""
        await self._prepare()
        await self._stage()
        return await self.exporter.export_once(now or self.clock())

    async def import_once(self, now: datetime | None = None) -> ImportReport[Effect]:
        """One importer pass over the inbox, then the service's `committed`."""
        await self._prepare()
        report = await self.importer.import_once(now or self.clock())
        if report.batches:
            try:
                await self.service.committed(report)
            except Exception as exc:
                # The pass is committed and audited; what failed is the service's to redo
                # (the processor's reconciliation queues the jobs Redis did not take).
                log.error("link_committed_failed", error=f"{type(exc).__name__}: {exc}")
        return report

    async def _prepare(self) -> None:
        """Before the first pass: the peer's row and the outbox."""
        if not self._ready:
            await ensure_peer(self.pool, self.settings.peer_network_id)
            await asyncio.to_thread(self.settings.outbox_dir.mkdir, parents=True, exist_ok=True)
            self._ready = True

    async def _stage(self) -> None:
        staged = 0
        while staged < STAGED_PER_PASS:
            async with self.pool.acquire() as conn, conn.transaction():
                count = await self.service.stage(conn, min(STAGE_CHUNK, STAGED_PER_PASS - staged))
            staged += count
            if count < STAGE_CHUNK:
                return

    async def state(self, now: datetime | None = None) -> LinkState:
        """The link state towards the peer, and the gauges updated from it."""
        state = await read_link_state(self.pool, self.settings.peer_network_id, now or self.clock())
        set_gauges(state)
        return state

    def health_check(self) -> HealthCheck:
        """The `/health` check of this link (non-critical; fails when stale)."""
        return link_health_check(
            self.pool,
            self.settings.peer_network_id,
            stale_after_s=self.settings.stale_after_s,
            clock=self.clock,
        )

    def close(self) -> None:
        """Release the importer's claim folder."""
        self.importer.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Export, import and refresh the gauges until `stop` is set."""
        # watchfiles logs every change at INFO; the link's own lines say what matters.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        await asyncio.to_thread(self.settings.inbox_dir.mkdir, parents=True, exist_ok=True)
        wakeup = asyncio.Event()
        peer, claims = self.settings.peer_network_id, str(self.importer.claims.path)
        log.info("link_started", peer=peer, claims=claims)
        # A failed pass (database or disk down) is logged and tried again next window:
        # everything it did is in committed rows or published files, nothing is lost.
        window = self.settings.export_window_s
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(run_every(window, self._export_pass, stop, "link_export_pass"))
                tasks.create_task(self._import_loop(stop, wakeup))
                tasks.create_task(self._watch(stop, wakeup))
        finally:
            await asyncio.to_thread(self.close)
            log.info("link_stopped", peer=self.settings.peer_network_id)

    async def _export_pass(self) -> None:
        await self.export_once()
        await self.state()

    async def _import_loop(self, stop: asyncio.Event, wakeup: asyncio.Event) -> None:
        while not stop.is_set():
            wakeup.clear()  # events arriving during the pass trigger another one
            try:
                await self.import_once()
            except Exception as exc:
                log.error("link_import_pass_failed", error=f"{type(exc).__name__}: {exc}")
            await _wait(stop, self.settings.sweep_interval_s, wakeup)

    async def _watch(self, stop: asyncio.Event, wakeup: asyncio.Event) -> None:
        """Turn batch arrivals in the inbox into wake-ups; events are hints, sweeps the truth."""
        while not stop.is_set():
            try:
                async for _ in awatch(
                    self.settings.inbox_dir,
                    watch_filter=_batch_arrival,
                    step=WATCH_STEP_MS,
                    debounce=WATCH_DEBOUNCE_MS,
                    recursive=False,
                    stop_event=stop,
                ):
                    wakeup.set()
            except (OSError, RuntimeError) as exc:
                log.error("link_watch_failed", error=str(exc), retry_in_s=WATCH_RETRY_S)
                await _wait(stop, WATCH_RETRY_S)


async def _wait(stop: asyncio.Event, timeout_s: float, wakeup: asyncio.Event | None = None) -> None:
    """Sleep up to `timeout_s`, ending early when `stop` (or `wakeup`) is set."""
    events = [stop] if wakeup is None else [stop, wakeup]
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _batch_arrival(change: Change, path: str) -> bool:
    """Only a batch name appearing matters; `.part` writes and removals do not."""
    return change is Change.added and BatchName.parse(Path(path).name) is not None

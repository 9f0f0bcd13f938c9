"""The agent process: one delivery loop per route, woken by file events and a rescan clock."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path
from typing import Final

import structlog
from watchfiles import Change, awatch

from batchformat import BatchName
from servicekit.server import embedded_server
from transfer_agent.config import AgentConfig
from transfer_agent.http import build_app
from transfer_agent.route import RouteRunner

PAUSED_RECHECK_S: Final = 5.0
FAILED_RECHECK_S: Final = 5.0
# watchfiles yields once no new event came for STEP_MS: the floor of delivery latency.
WATCH_STEP_MS: Final = 5
WATCH_DEBOUNCE_MS: Final = 100
WATCH_RETRY_S: Final = 5.0

log = structlog.get_logger("transfer_agent")


class Agent:
    """Runs every route until `stop()` (SIGTERM or SIGINT)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.runners = [RouteRunner(route, config.agent.agent_id) for route in config.routes]
        self._wakeups = {runner.name: asyncio.Event() for runner in self.runners}
        self._stopping = asyncio.Event()
        self._cancel = threading.Event()  # seen by copies running in worker threads

    def stop(self) -> None:
        """Ask every loop to finish: copies in progress are abandoned cleanly."""
        if not self._stopping.is_set():
            log.info("agent_stopping")
        self._stopping.set()
        self._cancel.set()
        for wakeup in self._wakeups.values():
            wakeup.set()

    async def run(self) -> None:
        """Serve until stopped; leaves every claimed batch either delivered or in flight."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        # watchfiles logs every change at INFO; our own lines say what matters.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        for runner in self.runners:
            runner.open()
        host, port = self.config.agent.host_port
        server = embedded_server(build_app(self.runners), host, port)
        log.info(
            "agent_started",
            routes=[runner.name for runner in self.runners],
            listen=self.config.agent.listen,
            claim_folders=[str(runner.claims.path) for runner in self.runners],
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(server.serve())
                tasks.create_task(self._watch())
                for runner in self.runners:
                    tasks.create_task(self._route_loop(runner))
                await self._stopping.wait()
                server.should_exit = True
        finally:
            for runner in self.runners:
                runner.close()
            log.info("agent_stopped")

    async def _route_loop(self, runner: RouteRunner) -> None:
        wakeup = self._wakeups[runner.name]
        while not self._stopping.is_set():
            wakeup.clear()  # events arriving during the pass trigger another one
            timeout = self.config.agent.rescan_interval_s
            try:
                result = await asyncio.to_thread(runner.drain, self._cancel)
                if result.paused:
                    timeout = PAUSED_RECHECK_S
            except OSError as exc:
                log.error("route_pass_failed", route=runner.name, error=str(exc))
                timeout = FAILED_RECHECK_S
            try:
                async with asyncio.timeout(timeout):
                    await wakeup.wait()
            except TimeoutError:
                pass

    async def _watch(self) -> None:
        """Turn file events in the source folders into wake-ups; events are only hints."""
        by_folder = {runner.config.source: runner.name for runner in self.runners}
        while not self._stopping.is_set():
            try:
                async for changes in awatch(
                    *by_folder,
                    watch_filter=_batch_arrival,
                    step=WATCH_STEP_MS,
                    debounce=WATCH_DEBOUNCE_MS,
                    recursive=False,
                    force_polling=self.config.agent.force_polling or None,
                    stop_event=self._stopping,
                ):
                    for _, path in changes:
                        route = by_folder.get(Path(path).parent)
                        if route is not None:
                            self._wakeups[route].set()
            except (OSError, RuntimeError) as exc:
                log.error("watch_failed", error=str(exc), retry_in_s=WATCH_RETRY_S)
                try:
                    async with asyncio.timeout(WATCH_RETRY_S):
                        await self._stopping.wait()
                except TimeoutError:
                    pass


def _batch_arrival(change: Change, path: str) -> bool:
    """Only a batch name appearing matters; `.part` writes and removals do not."""
    return change is Change.added and BatchName.parse(Path(path).name) is not None

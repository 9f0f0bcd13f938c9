"""`python -m airlock_local` (`make demo`): start everything, print how to use it, run until
Ctrl-C or SIGTERM, then stop everything.

Exit codes: 0 stopped on request, 1 the demo could not start, 2 bad `DEMO_*` settings or
another demo already runs on the same folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

import httpx

from airlock_local import banner
from airlock_local.console import Console
from airlock_local.layout import DemoLayout, Generated
from airlock_local.processes import ProcessSpec, demo_processes, executables, process_names
from airlock_local.provisioning import (
    ensure_secret,
    ensure_signing_keys,
    prepare_folders,
    write_agent_config,
)
from airlock_local.seeding import SeedError, seed_and_sync
from airlock_local.servers import DemoServers, ServerUrls
from airlock_local.settings import DemoSettings, load
from airlock_local.supervisor import Supervisor, stop_stale_processes
from servicekit.settings import SettingsError

EXIT_STOPPED: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
LIVE_TIMEOUT_S: Final = 180.0
REPEAT_SIGNAL_S: Final = 2.0

T = TypeVar("T")


class DemoError(Exception):
    """The demo cannot start; the message says why."""


def main() -> int:
    """Run the demo in the foreground; returns the exit code."""
    try:
        settings = load()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    layout = DemoLayout.at(settings.dir)
    layout.run.mkdir(parents=True, exist_ok=True)
    with _exclusive(layout) as locked:
        if not locked:
            print(f"error: another `make demo` is running on {layout.root}", file=sys.stderr)
            return EXIT_USAGE
        console = Console(layout, process_names(settings))
        console.route_structlog()
        try:
            return asyncio.run(Demo(settings, layout, console).run())
        finally:
            console.close()


@contextlib.contextmanager
def _exclusive(layout: DemoLayout) -> Iterator[bool]:
    """Hold the data folder's lock for as long as the demo runs (False: someone else has it)."""
    with (layout.run / "demo.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


class Demo:
    """One run of the demo: start-up, supervision until a signal, shutdown."""

    def __init__(self, settings: DemoSettings, layout: DemoLayout, console: Console) -> None:
        self.settings = settings
        self.layout = layout
        self.console = console
        self.servers = DemoServers(layout)
        self.supervisor = Supervisor(console, layout.run)
        self._stop = asyncio.Event()
        self._server_work: asyncio.Future[Any] | None = None
        self._first_signal_at: float | None = None

    async def run(self) -> int:
        """Start everything, wait for a signal, stop everything; the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        code = EXIT_STOPPED
        start = asyncio.create_task(self._start())
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            start.cancel()
        try:
            await start
        except asyncio.CancelledError:
            pass  # stopped during start-up
        except (DemoError, SeedError) as exc:
            code = self._failed(str(exc))
        except Exception as exc:
            code = self._failed(f"{type(exc).__name__}: {exc}")
        else:
            await stopped
        finally:
            stopped.cancel()
            await self._shutdown()
        return code

    def _failed(self, reason: str) -> int:
        self.console.say(f"error: {reason}")
        self.console.say(f"the demo could not start; logs are in {self.layout.logs}")
        return EXIT_FAILED

    def _on_signal(self, signum: int) -> None:
        now = time.monotonic()
        if self._first_signal_at is None:
            self._first_signal_at = now
            self.console.say(f"{signal.Signals(signum).name}: stopping everything…")
            self._stop.set()
        elif now - self._first_signal_at >= REPEAT_SIGNAL_S:
            # A terminal's Ctrl-C reaches make, uv and us at once (and uv forwards it again):
            # only a signal that comes clearly later asks for the hard way.
            self.console.say("signalled again: killing every process now")
            self.supervisor.kill_now()

    async def _start(self) -> None:
        began = time.monotonic()
        say = self.console.say
        say(f"Airlock demo, data folder {self.layout.root} (DEMO_DIR)")
        for name in stop_stale_processes(self.layout.run, executables()):
            say(f"stopped {name}, left running by an earlier demo that was killed")
        _check_ports(self.settings)
        await self._provision()
        say("starting PostgreSQL (databases gateway and processor)…")
        gateway_db, processor_db = await self._server_step(self.servers.start_postgres)
        say("starting Redis (one server per network)…")
        gateway_redis, processor_redis = await self._server_step(self.servers.start_redis)
        for name in self.servers.reused:
            say(f"reusing {name}, left running by an earlier demo; it is stopped at exit")
        urls = ServerUrls(gateway_db, processor_db, gateway_redis, processor_redis)
        processes = demo_processes(self.layout, self.settings, urls)
        for spec in processes.migrations:
            say(f"migrating ({spec.name})…")
            await self._migrate(spec)
        say("starting the APIs, the workers and the transfer agent…")
        for spec in processes.services:
            self.supervisor.keep_running(spec)
        await self._wait_until_live(processes.services)
        say("seeding through the processor's admin API…")
        public = banner.Urls.of(self.settings)
        seeded = await seed_and_sync(self.layout, public.processor, public.gateway, say)
        banner.write_credentials(self.layout, seeded, public)
        session = banner.curl_session(public, seeded)
        banner.write_try_it(self.layout, session)
        # The banner shows both passwords: never in a log file, which only points to them.
        self.console.show_secret(
            banner.banner(self.layout, seeded, public, session, time.monotonic() - began),
            logged_as=f"ready: credentials in {self.layout.credentials} (mode 600)",
        )

    async def _provision(self) -> None:
        def provision() -> None:
            prepare_folders(self.layout)
            ensure_secret(self.layout.secret(Generated.ADMIN_BOOTSTRAP))
            for jwt_secret in (Generated.GATEWAY_JWT, Generated.PROCESSOR_JWT):
                ensure_secret(self.layout.secret(jwt_secret), nbytes=32)
            ensure_signing_keys(self.layout)
            write_agent_config(self.layout, port=self.settings.agent_port)

        await asyncio.to_thread(provision)

    async def _server_step(self, step: Callable[[], T]) -> T:
        """Run a blocking server start in a thread; a cancellation waits for it to finish
        (in `_shutdown`), so whatever it started is known and stopped."""
        work = asyncio.ensure_future(asyncio.to_thread(step))
        self._server_work = work
        return await asyncio.shield(work)

    async def _migrate(self, spec: ProcessSpec) -> None:
        code = await self.supervisor.run_once(spec)
        if code != 0:
            raise DemoError(f"{spec.name} failed (exit code {code}); see {spec.name} above")

    async def _wait_until_live(self, specs: tuple[ProcessSpec, ...]) -> None:
        self.console.say("waiting for every process to answer on /health/live…")
        waiting = {spec.name: spec.live_port for spec in specs if spec.live_port}
        deadline = time.monotonic() + LIVE_TIMEOUT_S
        async with httpx.AsyncClient(timeout=httpx.Timeout(2.0)) as client:
            while waiting:
                for name, port in list(waiting.items()):
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get(f"{banner.LOCALHOST}:{port}/health/live")
                        if response.status_code == httpx.codes.OK:
                            del waiting[name]
                if time.monotonic() > deadline:
                    silent = ", ".join(sorted(waiting))
                    raise DemoError(f"no answer within {LIVE_TIMEOUT_S:.0f} s from {silent}")
                if waiting:
                    await asyncio.sleep(0.25)

    async def _shutdown(self) -> None:
        self.console.say("stopping the processes…")
        await self.supervisor.stop()
        if self._server_work is not None:
            with contextlib.suppress(Exception):
                await self._server_work
        self.console.say("stopping Redis and PostgreSQL…")
        await asyncio.to_thread(self.servers.stop)
        self.console.say("stopped.")


def _check_ports(settings: DemoSettings) -> None:
    """Every port free and distinct, or a message naming the variable that moves it."""
    ports = settings.ports()
    seen: dict[int, str] = {}
    for variable, port in ports.items():
        if port in seen:
            raise DemoError(f"{variable} and {seen[port]} are both {port}")
        seen[port] = variable
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise DemoError(
                    f"port {port} is in use; stop what uses it or set {variable}"
                ) from None

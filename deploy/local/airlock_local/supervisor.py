"""Run the demo's processes: output to the console, restarts with backoff, orderly stop.

Each child runs in its own session (process group), so a Ctrl-C in the terminal reaches
only the supervisor, which then stops the children itself: SIGTERM to each, a grace time,
then SIGKILL to whatever is left of their process groups (a server's worker processes
included). A child that exits while the demo is running is started again after a backoff
that doubles up to `MAX_BACKOFF_S` and starts over once a run has lasted `STABLE_AFTER_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from airlock_local.console import Console
from airlock_local.processes import ProcessSpec

INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 15.0
STABLE_AFTER_S: Final = 30.0
STOP_GRACE_S: Final = 8.0
_READ_CHUNK: Final = 65536
_PUMP_DRAIN_S: Final = 2.0
_EXIT_POLL_S: Final = 0.1


class Supervisor:
    """Starts child processes, keeps the long-running ones alive, and stops them all."""

    def __init__(self, console: Console, run_dir: Path) -> None:
        self._console = console
        self._run_dir = run_dir
        self._stopping = asyncio.Event()
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self.restarts: dict[str, int] = {}

    async def run_once(self, spec: ProcessSpec) -> int:
        """Run a one-shot process (a migration) to its end; return its exit code."""
        return await self._run(spec)

    def keep_running(self, spec: ProcessSpec) -> None:
        """Start a long-running process and restart it whenever it exits, until `stop`."""
        self._keepers.append(asyncio.create_task(self._keep(spec), name=f"keep-{spec.name}"))

    async def stop(self, *, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every child, SIGKILL what is left after `grace_s`; wait for all of it."""
        self._stopping.set()
        for process in list(self._running.values()):
            _signal_leader(process, signal.SIGTERM)
        if not self._keepers:
            return
        _, late = await asyncio.wait(self._keepers, timeout=grace_s)
        if late:
            for name, process in list(self._running.items()):
                self._console.say(f"{name} did not stop within {grace_s:.0f} s: SIGKILL")
                _kill_group(process.pid)
        await asyncio.gather(*self._keepers, return_exceptions=True)

    def kill_now(self) -> None:
        """SIGKILL every child's process group at once (a second Ctrl-C)."""
        for process in list(self._running.values()):
            _kill_group(process.pid)

    async def _keep(self, spec: ProcessSpec) -> None:
        backoff = INITIAL_BACKOFF_S
        while not self._stopping.is_set():
            started = time.monotonic()
            code = await self._run(spec)
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STABLE_AFTER_S:
                backoff = INITIAL_BACKOFF_S
            self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
            self._console.say(
                f"{spec.name} exited unexpectedly ({_describe(code)}); "
                f"restarting in {backoff:.0f} s (restart {self.restarts[spec.name]})"
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stopping.wait()
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _run(self, spec: ProcessSpec) -> int:
        if self._stopping.is_set():
            return -signal.SIGTERM
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=dict(spec.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._running[spec.name] = process
        if self._stopping.is_set():  # `stop` began while this one was being started
            _signal_leader(process, signal.SIGTERM)
        pid_file = self._run_dir / f"{spec.name}.pid"
        pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        assert process.stdout is not None
        assert process.stderr is not None
        pumps = asyncio.gather(
            self._pump(spec.name, process.stdout), self._pump(spec.name, process.stderr)
        )
        try:
            code = await _exit_code(process)
        finally:
            # Whatever the leader left behind in its group (server workers, a migration's
            # child) goes with it; the pipes then close and the pumps finish.
            _kill_group(process.pid)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_PUMP_DRAIN_S):
                    await asyncio.shield(pumps)
            pumps.cancel()
            del self._running[spec.name]
            pid_file.unlink(missing_ok=True)
        return code

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        pending = b""
        while chunk := await stream.read(_READ_CHUNK):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._console.line(name, _text(line))
        if pending:
            self._console.line(name, _text(pending))


async def _exit_code(process: asyncio.subprocess.Process) -> int:
    """The leader's exit code, as soon as it has exited.

    Not `process.wait()`: before Python 3.12 it also waits until the output pipes close,
    and the worker processes of a server whose leader died hold them open. The exit code
    itself is set as soon as the leader is reaped.
    """
    while process.returncode is None:  # noqa: ASYNC110 - nothing to wait on, see above
        await asyncio.sleep(_EXIT_POLL_S)
    return process.returncode


def stop_stale_processes(run_dir: Path, executables: Sequence[str]) -> list[str]:
    """Stop children a killed supervisor left running (their pid files are still there).

    A pid is only signalled if it still runs one of `executables` and leads its own process
    group, so a recycled pid is left alone.
    """
    stopped = []
    for pid_file in sorted(run_dir.glob("*.pid")):
        pid = _read_pid(pid_file)
        if pid is not None and _leads_group_running(pid, executables):
            _stop_group(pid)
            stopped.append(pid_file.stem)
        pid_file.unlink(missing_ok=True)
    return stopped


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _leads_group_running(pid: int, executables: Sequence[str]) -> bool:
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        leads = os.getpgid(pid) == pid
    except OSError:
        return False
    return leads and any(os.fsencode(executable) in arguments for executable in executables)


def _stop_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    _kill_group(pgid)


def _signal_leader(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"

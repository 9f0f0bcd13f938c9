"""Serve an ASGI app (under granian, or a service's own command) for a benchmark, and stop it
with all its workers."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from servicekit.testing import free_port

GRANIAN: Final = Path(sys.executable).parent / "granian"
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
WORKERS: Final = 2
READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 15.0
_POLL_S: Final = 0.1


def event_loop() -> str:
    """granian's `--loop`: uvloop when it is installed, else granian's own choice."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "auto"


def event_loop_note() -> str:
    """The `--loop` given, and what granian makes of `auto` here, for reports."""
    loop = event_loop()
    if loop != "auto":
        return f"--loop {loop}"
    return f"--loop auto ({granian_auto_loop()})"


def granian_auto_loop() -> str:
    """What granian's `auto` loop is in this environment: rloop, else uvloop, else asyncio
    (granian's `_loops.build_auto_loop`; the same venv serves every benchmark process)."""
    for name in ("rloop", "uvloop"):
        if importlib.util.find_spec(name) is not None:
            return name
    return "asyncio (neither rloop nor uvloop installed)"


def granian_argv(target: str, port: int, *, workers: int = WORKERS) -> list[str]:
    """The command serving factory `target` ("module:function") on 127.0.0.1:`port`."""
    return [
        str(GRANIAN),
        "--interface", "asgi",
        "--workers", str(workers),
        "--loop", event_loop(),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--log-level", "warning",
        "--factory",
        target,
    ]  # fmt: skip


@dataclass(frozen=True)
class RunningServer:
    """A server the benchmark started: where it answers, and its process group's id."""

    base_url: str
    pid: int  # the leader of its own process group (its workers are in it)
    ops_url: str | None = None  # an Airlock API's operations port: /health, /metrics


@contextmanager
def serve_granian(
    target: str,
    *,
    env: Mapping[str, str],
    log_path: Path,
    ready_path: str = "/",
    workers: int = WORKERS,
) -> Iterator[RunningServer]:
    """Serve `target` under granian until the block ends (see `serve_command`)."""
    port = free_port()
    with serve_command(
        granian_argv(target, port, workers=workers),
        port=port,
        env={"PYTHONPATH": str(REPO_ROOT), **env},
        log_path=log_path,
        ready_path=ready_path,
    ) as server:
        yield server


@contextmanager
def serve_command(
    argv: list[str],
    *,
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    ready_path: str = "/",
) -> Iterator[RunningServer]:
    """Run a server command listening on 127.0.0.1:`port` until the block ends.

    Yields once `ready_path` answers below 500. The command runs in its own process group
    (its workers with it), its output in `log_path`; the whole group gets SIGTERM on exit,
    SIGKILL if it has not stopped in STOP_TIMEOUT_S.
    """
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, base_url + ready_path, log_path)
        yield RunningServer(base_url, process.pid)
    finally:
        _stop_group(process)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see {log_path}")
            with suppress(httpx.TransportError):
                if client.get(url).status_code < 500:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {READY_TIMEOUT_S} s; see {log_path}")
            time.sleep(_POLL_S)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (granian stops its workers); SIGKILL it if that hangs."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # Not reaped yet, so the group id cannot have been reused.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

"""Serve an ASGI app under granian for a benchmark, and stop it with all its workers."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final

import httpx

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
    found = [name for name in ("rloop", "uvloop") if importlib.util.find_spec(name) is not None]
    return f"--loop auto ({found[0] if found else 'asyncio: neither rloop nor uvloop installed'})"


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


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve_granian(
    target: str,
    *,
    env: Mapping[str, str],
    log_path: Path,
    ready_path: str = "/",
    workers: int = WORKERS,
) -> Iterator[str]:
    """Serve `target` until the block ends; yields its base URL once `ready_path` answers.

    granian runs in its own process group (its workers with it), its output in `log_path`;
    the whole group gets SIGTERM on exit, SIGKILL if it has not stopped in STOP_TIMEOUT_S.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            granian_argv(target, port, workers=workers),
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, base_url + ready_path, log_path)
        yield base_url
    finally:
        _stop_group(process)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"granian exited with {process.returncode}; see {log_path}")
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

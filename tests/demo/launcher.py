"""Start `make demo`'s launcher (`python -m airlock_local`) as a child process, and find
everything it started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
READY_TIMEOUT_S = 150.0
PORT_VARIABLES = (
    "DEMO_GATEWAY_PORT",
    "DEMO_PROCESSOR_PORT",
    "DEMO_AGENT_PORT",
    "DEMO_GATEWAY_OPS_PORT",
    "DEMO_PROCESSOR_OPS_PORT",
    "DEMO_GATEWAY_WORKER_PORT",
    "DEMO_PROCESSOR_WORKER_PORT",
)


def demo_ports(gateway_workers: int = 1, processor_workers: int = 1) -> dict[str, int]:
    """Free ports for every `DEMO_*_PORT`, all distinct; each side's workers get a run of
    consecutive ones from its `*_WORKER_PORT` (held together while chosen)."""
    held: list[socket.socket] = []
    try:
        ports = {variable: _hold_ports(1, held) for variable in PORT_VARIABLES[:-2]}
        ports["DEMO_GATEWAY_WORKER_PORT"] = _hold_ports(gateway_workers, held)
        ports["DEMO_PROCESSOR_WORKER_PORT"] = _hold_ports(processor_workers, held)
        return ports
    finally:
        for sock in held:
            sock.close()


def _hold_ports(count: int, held: list[socket.socket]) -> int:
    """Bind `count` consecutive free ports (added to `held`); return the first."""
    for _ in range(100):
        block = [socket.socket()]
        block[0].bind(("127.0.0.1", 0))
        first: int = block[0].getsockname()[1]
        try:
            for offset in range(1, count):
                block.append(socket.socket())
                block[-1].bind(("127.0.0.1", first + offset))
        except (OSError, OverflowError):
            for sock in block:
                sock.close()
            continue
        held.extend(block)
        return first
    raise AssertionError(f"found no {count} consecutive free ports")


@dataclass
class Launch:
    """One run of the launcher on a data folder."""

    demo_dir: Path
    process: subprocess.Popen[bytes]
    output: Path
    ports: dict[str, int]
    started_at: float = field(default_factory=time.monotonic)

    @property
    def gateway_origin(self) -> str:
        """Where the gateway's API server answers."""
        return f"http://127.0.0.1:{self.ports['DEMO_GATEWAY_PORT']}"

    @property
    def gateway(self) -> str:
        """The gateway's API root."""
        return f"{self.gateway_origin}/api/v1"

    @property
    def processor(self) -> str:
        """The processor's API root."""
        return f"http://127.0.0.1:{self.ports['DEMO_PROCESSOR_PORT']}/api/v1"

    @property
    def agent(self) -> str:
        """The transfer agent's operational root."""
        return f"http://127.0.0.1:{self.ports['DEMO_AGENT_PORT']}"

    def credentials(self) -> dict[str, Any]:
        """`credentials.json` as written."""
        document: dict[str, Any] = json.loads((self.demo_dir / "credentials.json").read_text())
        return document

    def output_tail(self, lines: int = 60) -> str:
        """The end of the launcher's output, for failure messages."""
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def child_pids(self) -> dict[str, int]:
        """The supervised processes' pids, from the launcher's pid files."""
        return {
            path.stem: int(path.read_text())
            for path in (self.demo_dir / "run").glob("*.pid")
            if path.read_text().strip()
        }

    def signal_child(self, name: str, signum: signal.Signals) -> int:
        """Send `signum` to a supervised process (its leader only); the pid signalled."""
        pid = self.child_pids()[name]
        os.kill(pid, signum)
        return pid

    def child_env(self, name: str) -> dict[str, str]:
        """The environment a supervised process runs with (its database URL, say)."""
        pid = self.child_pids()[name]
        pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(pair.decode(errors="replace").split("=", 1) for pair in pairs if b"=" in pair)

    def wait_ready(self) -> float:
        """Wait for the banner (credentials.json is written just before); seconds it took."""
        deadline = self.started_at + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the launcher exited with {self.process.returncode}:\n{self.output_tail()}"
                )
            if "Airlock is running" in self.output.read_text(errors="replace"):
                return time.monotonic() - self.started_at
            time.sleep(0.25)
        raise AssertionError(f"not ready within {READY_TIMEOUT_S} s:\n{self.output_tail()}")

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM the launcher; its exit code and how long it took to exit."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - began

    def kill_everything(self) -> None:
        """After a failed test: the launcher's group and whatever still runs for this folder."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in processes_using(self.demo_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def launch(
    demo_dir: Path,
    output: Path,
    *,
    workers: tuple[int, int] = (1, 1),
    env: Mapping[str, str] | None = None,
) -> Launch:
    """Start the launcher on `demo_dir` with free ports, its output going to `output`.

    `workers`: how many gateway and processor `worker` processes (each worker after the
    first listens on the next port). `env`: more variables for the launcher and, through
    it, the services (`GATEWAY_*`, `PROCESSOR_*`).
    """
    ports = demo_ports(*workers)
    variables = {
        **{key: value for key, value in os.environ.items() if not key.startswith("DEMO_")},
        "DEMO_DIR": str(demo_dir),
        **{key: str(port) for key, port in ports.items()},
        "DEMO_GATEWAY_WORKERS": str(workers[0]),
        "DEMO_PROCESSOR_WORKERS": str(workers[1]),
        "PYTHONPATH": str(ROOT / "deploy" / "local"),
        **(env or {}),
    }
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "airlock_local"],
            cwd=ROOT,
            env=variables,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Launch(demo_dir, process, output, ports)


def processes_using(folder: Path) -> list[int]:
    """Pids whose command line or environment mentions `folder` (every process of a demo:
    the children get their data folders in their environment, the servers in theirs or on
    their command line)."""
    needle = os.fsencode(str(folder))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if (
                needle in (entry / "cmdline").read_bytes()
                or needle in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def redis_sockets(demo_dir: Path) -> list[Path]:
    """The unix sockets of the demo's two Redis servers, as their configurations name them."""
    sockets = []
    for side in ("gateway", "processor"):
        config = (demo_dir / side / "redis" / "redis.conf").read_text()
        line = next(line for line in config.splitlines() if line.startswith("unixsocket "))
        sockets.append(Path(line.split(" ", 1)[1].strip('"')))
    return sockets


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

"""A transfer-agent benchmark site: one temp folder with the route's folders, and the agent."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from batchformat import (
    Header,
    PublishedBatch,
    RecipientKeys,
    SigningKey,
    generate_encryption_key_pair,
    generate_key_pair,
    load_signing_key,
    write_batch,
)
from bench.harness import process_cpu_seconds
from servicekit.testing import free_port

KEY_ID: Final = "request-net-1"
ROUTE: Final = "requests"
AGENT: Final = Path(sys.executable).with_name("transfer-agent")


@dataclass
class Site:
    """One temp folder, hence one file system: prepared batches, the route's folders, copies."""

    root: Path
    key: SigningKey
    recipients: RecipientKeys  # the receiver's public key, for encrypted batches
    prepared: Path = field(init=False)  # batches wait here until renamed into the source
    source: Path = field(init=False)
    destination: Path = field(init=False)
    copies: Path = field(init=False)  # `cp`'s copies of the big batch
    _seq: Iterator[int] = field(init=False, default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.prepared, self.copies = self.root / "prepared", self.root / "cp-copies"
        self.source = self.root / "request-net" / "outbox"
        self.destination = self.root / "response-net" / "inbox"

    @classmethod
    def create(cls, root: Path) -> Site:
        """Make the folders, a signing key pair and an encryption key pair under root."""
        private, _ = generate_key_pair(KEY_ID, root / "keys")
        _, recipient = generate_encryption_key_pair("response-net-1", root / "keys")
        site = cls(root, load_signing_key(private), RecipientKeys.from_files([recipient]))
        for folder in (site.prepared, site.source, site.destination, site.copies):
            folder.mkdir(parents=True)
        return site

    def config(self, after_delivery: str, port: int) -> Path:
        """Write the agent's configuration for the route; return its path."""
        path = self.root / f"agent-{after_delivery}.toml"
        public_key = self.root / "keys" / f"{KEY_ID}.pub"
        path.write_text(
            f'[agent]\nlisten = "127.0.0.1:{port}"\nrescan_interval_s = 60\n'
            # Logging at info would cost a line per batch and distort the small-batch figures.
            'log_format = "json"\nlog_level = "warning"\n\n'
            f'[[routes]]\nname = "{ROUTE}"\nsource = "{self.source}"\n'
            f'destination = "{self.destination}"\ntrusted_keys = ["{public_key}"]\n'
            f'after_delivery = "{after_delivery}"\nmin_free_bytes = 0\n'
        )
        return path

    def batch(
        self, records: Iterator[dict[str, Any]], *, encrypted: bool = False
    ) -> PublishedBatch:
        """Publish a signed batch into the prepared folder, its records in clear or encrypted."""
        header = Header(
            batch_id=uuid.uuid4(),
            source="request-net",
            destination="response-net",
            seq=next(self._seq),
            created_at=datetime.now(UTC),
        )
        to = self.recipients if encrypted else None
        return write_batch(self.prepared, header, records, self.key, encrypt_to=to)


def requests(count: int) -> Iterator[dict[str, Any]]:
    """Request-like records of ~280 B; the agent never decodes them, so only their size counts.

    A pool is cycled so that preparing 1 GiB does not take longer than the benchmark.
    """
    pool = [
        {
            "kind": "request",
            "id": str(uuid.UUID(int=i)),
            "user_id": str(uuid.UUID(int=i % 977)),
            "type": "documents.search",
            "payload": {"query": f"quarterly report {i % 1000}", "limit": 10, "offset": i % 50},
            "trace_id": f"{i:032x}",
            "created_at": "2026-11-27T12:00:00Z",
        }
        for i in range(min(count, 4096))
    ]
    for i in range(count):
        yield pool[i % len(pool)]


def requests_of_about(size_bytes: int) -> Iterator[dict[str, Any]]:
    """Enough request records for a batch of about size_bytes."""
    record_bytes = len(msgspec.json.encode(next(requests(1)))) + 1
    return requests(size_bytes // record_bytes + 1)


class AgentProcess:
    """A `transfer-agent run` child process; its output goes to a log shown on failure."""

    def __init__(self, config: Path, port: int) -> None:
        self.port = port
        self.log_path = config.with_suffix(".log")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(AGENT), "run", "--config", str(config)], stdout=log, stderr=log
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the agent answers /health/live."""
        deadline = time.monotonic() + timeout
        while self.get("/health/live") is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the transfer agent did not start")
            time.sleep(0.05)

    def get(self, path: str) -> bytes | None:
        """The body of a successful GET on the agent, or None."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.read() if response.status == 200 else None
        except OSError:
            return None
        finally:
            connection.close()

    def copy_totals(self) -> tuple[int, float]:
        """Batches delivered and the agent's own seconds for them (its copy-duration metric)."""
        totals = {"count": 0.0, "sum": 0.0}
        for line in (self.get("/metrics") or b"").decode().splitlines():
            name, _, value = line.partition("{")
            for total in totals:
                if name == f"transfer_copy_duration_seconds_{total}":
                    totals[total] = float(value.rsplit(" ", 1)[1])
        return int(totals["count"]), totals["sum"]

    def wait_copies(self, count: int, timeout: float = 30.0) -> float:
        """Wait until the agent counted `count` deliveries; return its total copy seconds."""
        deadline = time.monotonic() + timeout
        while (totals := self.copy_totals())[0] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the agent counted {totals[0]} deliveries, not {count}")
            time.sleep(0.01)
        return totals[1]

    def peak_rss_mb(self) -> float:
        """VmHWM, the high-water mark of the agent's resident set so far, in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in the agent's /proc status")

    def cpu_seconds(self) -> float:
        """User and system CPU seconds the agent has used so far."""
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the agent's output."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_agent(site: Site, after_delivery: str) -> Iterator[AgentProcess]:
    """An agent serving the site's route, stopped however the block ends."""
    port = free_port()
    agent = AgentProcess(site.config(after_delivery, port), port)
    try:
        agent.wait_ready()
        yield agent
    except BaseException as exc:
        # The temp folder, log included, is removed on the way out: keep what explains it.
        exc.add_note(f"transfer agent's log (last lines):\n{agent.log_tail()}")
        raise
    finally:
        agent.stop()

"""Drop zones, keys and a real agent process for the transfer-agent tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from batchformat import BatchName, Header, SigningKey, TrustedKeys, write_batch
from batchformat.keys import generate_key_pair, load_signing_key
from servicekit.testing import free_port, wait_until

AGENT = str(Path(sys.executable).with_name("transfer-agent"))


@dataclass
class Site:
    """One route's folders and keys, and a config file for an agent serving it."""

    root: Path
    source: Path
    destination: Path
    key: SigningKey
    trusted: TrustedKeys
    port: int
    options: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    @property
    def config_path(self) -> Path:
        return self.root / f"agent-{self.port}.toml"

    def write_config(self, **route_options: Any) -> Path:
        options = {"after_delivery": "archive", **self.options, **route_options}
        lines = [
            "[agent]",
            f'listen = "127.0.0.1:{self.port}"',
            "rescan_interval_s = 1",
            'log_format = "json"',
            "",
            "[[routes]]",
            'name = "requests"',
            f'source = "{self.source}"',
            f'destination = "{self.destination}"',
            f'trusted_keys = ["{self.root / "keys" / "request-net-1.pub"}"]',
            *(f"{key} = {_toml(value)}" for key, value in options.items()),
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def batch(
        self,
        records: int = 3,
        *,
        folder: Path | None = None,
        key: SigningKey | None = None,
        pad: int = 0,
    ) -> Path:
        """Publish a signed batch (into the source by default) and return its path."""
        self.seq += 1
        header = Header(
            batch_id=uuid.uuid4(),
            source="request-net",
            destination="response-net",
            seq=self.seq,
            created_at=datetime.now(UTC),
        )
        items = [{"kind": "echo", "n": i, "pad": "x" * pad} for i in range(records)]
        return write_batch(folder or self.source, header, items, key or self.key).path

    def delivered(self) -> list[str]:
        return sorted(p.name for p in self.destination.iterdir() if BatchName.parse(p.name))

    def quarantined(self) -> list[str]:
        folder = self.source / "quarantine"
        if not folder.exists():
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if not p.name.endswith(".reason.json") and not p.name.startswith(".")
        )


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    generate_key_pair("request-net-1", folder)
    generate_key_pair("stranger", folder)
    return folder


@pytest.fixture
def site(tmp_path: Path, key_dir: Path) -> Site:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("request-net-1.key", "request-net-1.pub"):
        (keys / name).write_bytes((key_dir / name).read_bytes())
    (keys / "request-net-1.key").chmod(0o600)
    source = tmp_path / "request-net" / "outbox"
    destination = tmp_path / "response-net" / "inbox"
    source.mkdir(parents=True)
    destination.mkdir(parents=True)
    return Site(
        root=tmp_path,
        source=source,
        destination=destination,
        key=load_signing_key(keys / "request-net-1.key"),
        trusted=TrustedKeys.from_files([keys / "request-net-1.pub"]),
        port=free_port(),
    )


@pytest.fixture
def stranger_key(key_dir: Path) -> SigningKey:
    return load_signing_key(key_dir / "stranger.key")


class AgentProcess:
    """A real `transfer-agent run` subprocess, its output kept in a log file."""

    def __init__(self, site: Site, name: str = "agent") -> None:
        self.site = site
        self.log_path = site.root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> AgentProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [AGENT, "run", "--config", str(self.site.config_path)], stdout=log, stderr=log
        )
        log.close()
        if wait:
            wait_until(lambda: self.get("/health/live") is not None, what="agent to answer")
        return self

    def get(self, path: str) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.site.port}{path}", timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The agent's JSON log lines, optionally only those of one event."""
        lines = [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]
        return [line for line in lines if name is None or line.get("event") == name]


@pytest.fixture
def agents(site: Site) -> Iterator[list[AgentProcess]]:
    """Agents started by a test; whatever is still running at the end is killed."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        if agent.process is not None and agent.process.poll() is None:
            agent.kill()


def no_leftovers(site: Site) -> list[str]:
    """Anything in the drop zones that is not a delivered, archived or quarantined batch."""
    stray = []
    for folder in (site.source, site.destination):
        for path in folder.rglob("*"):
            relative = path.relative_to(site.root)
            if path.is_dir():
                continue
            if path.parent == site.source / "sent":
                continue
            if path.parent == site.source / "quarantine" and not path.name.startswith("."):
                continue
            if path.parent == site.destination and BatchName.parse(path.name):
                continue
            stray.append(str(relative))
    return stray


def kill_quietly(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

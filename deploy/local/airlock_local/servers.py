"""The demo's database and Redis servers: one PostgreSQL, one Redis per network.

They are servicekit's embedded servers, started by the supervisor (not by the services,
which get their URLs) so they live exactly as long as the demo. A server left running by a
demo that was killed (SIGKILL) is reused by the next start, and stopped at its end too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from airlock_local.layout import DemoLayout
from servicekit.embedded import EmbeddedPostgres, EmbeddedRedis

GATEWAY_DATABASE: Final = "gateway"
PROCESSOR_DATABASE: Final = "processor"
STOP_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class ServerUrls:
    """What the services are given: their database and their network's Redis."""

    gateway_database: str
    processor_database: str
    gateway_redis: str
    processor_redis: str


class DemoServers:
    """Start, and always stop, the demo's PostgreSQL and its two Redis servers."""

    def __init__(self, layout: DemoLayout) -> None:
        self.postgres = EmbeddedPostgres(layout.root)
        self.gateway_redis = EmbeddedRedis(layout.gateway.data_dir)
        self.processor_redis = EmbeddedRedis(layout.processor.data_dir)
        self._running_postgres = False
        self._running_redis: list[EmbeddedRedis] = []

    def start_postgres(self) -> tuple[str, str]:
        """Start (or reuse) PostgreSQL with both databases; return their URLs."""
        self.postgres.start()
        self._running_postgres = True
        return (
            self.postgres.ensure_database(GATEWAY_DATABASE),
            self.postgres.ensure_database(PROCESSOR_DATABASE),
        )

    def start_redis(self) -> tuple[str, str]:
        """Start (or reuse) the gateway's and the processor's Redis; return their URLs."""
        urls = []
        for server in (self.gateway_redis, self.processor_redis):
            urls.append(server.start())
            self._running_redis.append(server)
        return urls[0], urls[1]

    @property
    def reused(self) -> list[str]:
        """The servers an earlier, killed demo left running (reused now)."""
        names = []
        if self._running_postgres and not self.postgres.started:
            names.append("PostgreSQL")
        names += [
            f"Redis in {server.directory}" for server in self._running_redis if not server.started
        ]
        return names

    def stop(self) -> None:
        """Stop every server this run started or reused (Redis first: it holds no data of PG's)."""
        while self._running_redis:
            server = self._running_redis.pop()
            if server.started:
                server.stop()
            else:
                _shutdown_redis(server.socket_path)
        if self._running_postgres:
            self._running_postgres = False
            if self.postgres.started:
                self.postgres.stop()
            else:
                _stop_postmaster(self.postgres.pgdata)


def _shutdown_redis(socket_path: Path) -> None:
    """SHUTDOWN (which fsyncs the append-only file) the Redis answering on `socket_path`."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(STOP_TIMEOUT_S)
        connection.connect(str(socket_path))
        connection.sendall(b"SHUTDOWN\r\n")
        connection.recv(64)  # the server closes the connection as it exits
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _stop_postmaster(pgdata: Path) -> None:
    """Fast shutdown (SIGINT) of the postmaster serving `pgdata`, and wait until it is gone."""
    pid = _postmaster_pid(pgdata)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _postmaster_pid(pgdata) == pid and time.monotonic() < deadline:
        time.sleep(0.05)


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid in `postmaster.pid` if that process is a postgres serving this folder."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if os.fsencode(pgdata) in command_line else None

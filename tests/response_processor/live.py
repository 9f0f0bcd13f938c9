"""`response-processor serve` as operators run it: a real server on free ports."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from servicekit.testing import free_ports
from tests.response_processor.test_cli import CLI, run

ADMIN_PASSWORD: Final = "bootstrap admin password 123"
START_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True)
class LiveProcessor:
    """A running `response-processor serve`: its admin API, its operations port, its log."""

    url: str
    log: Path
    ops_url: str


@contextlib.contextmanager
def serve_processor(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    *,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
    **settings: str,
) -> Iterator[LiveProcessor]:
    """Migrate, then serve with `settings` (PROCESSOR_* variables) until the block ends."""
    secret = tmp_path / "admin-password"
    secret.write_text(ADMIN_PASSWORD)
    settings = {"PROCESSOR_ADMIN_PASSWORD_FILE": str(secret), **settings}
    migrated = run(tmp_path, database_url, redis_url, "migrate", **settings)
    assert migrated.returncode == 0, migrated.stderr
    port, ops_port = free_ports(2)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROCESSOR_")},
        "PROCESSOR_DATA_DIR": str(tmp_path / "data"),
        "PROCESSOR_DATABASE_URL": database_url,
        "PROCESSOR_REDIS_URL": redis_url,
        "PROCESSOR_PORT": str(port),
        "PROCESSOR_OPS_PORT": str(ops_port),
        "PROCESSOR_LOG_FORMAT": "json",
        **settings,
    }
    log = tmp_path / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen([CLI, "serve"], env=environment, stdout=output, stderr=output)
    live = LiveProcessor(f"{scheme}://127.0.0.1:{port}", log, f"http://127.0.0.1:{ops_port}")
    try:
        _wait_until_live(live, process, verify)
        yield live
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_live(
    live: LiveProcessor, process: subprocess.Popen[bytes], verify: ssl.SSLContext | bool
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert process.poll() is None, live.log.read_text()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{live.url}/health/live", timeout=2, verify=verify).status_code == 200:
                return
        assert time.monotonic() < deadline, live.log.read_text()
        time.sleep(0.2)

"""A worker killed with SIGKILL mid-job: the request is run again and answered exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from response_processor.domain import audit
from response_processor.domain.bootstrap import prepare_database
from response_processor.domain.users import UserIn, create_user
from response_processor.settings import ProcessorSettings
from servicekit.testing import wait_until
from tests.response_processor.conftest import USER_PASSWORD
from tests.response_processor.linkside import FakeGateway, exported_records, request

WORKER = str(Path(sys.executable).with_name("response-processor"))
ROOT = Path(__file__).parents[2]


def install_example_handlers(site: Path) -> None:
    """Make the example package's handlers an installed distribution for child processes."""
    dist = site / "airlock_example_handlers-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: airlock-example-handlers\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[airlock.handlers]\nnap = tests.response_processor.example_handlers:slow_handler\n"
    )


@pytest.fixture
def workers(settings: ProcessorSettings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start_worker(
    settings: ProcessorSettings, site: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROCESSOR_")},
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "PROCESSOR_DATA_DIR": str(settings.data_dir),
        "PROCESSOR_DATABASE_URL": str(settings.database_url),
        "PROCESSOR_REDIS_URL": str(settings.redis_url),
        "PROCESSOR_JWT_SECRET": settings.jwt_secret,
        "PROCESSOR_WORKER_PORT": str(port),
        "PROCESSOR_JOB_TIMEOUT_S": "3",
        "PROCESSOR_LOG_FORMAT": "json",
    }
    with log.open("ab") as output:
        return subprocess.Popen([WORKER, "worker"], env=env, stdout=output, stderr=output)


async def test_a_request_whose_worker_was_killed_is_completed_once(
    settings: ProcessorSettings,
    database_url: str,
    tmp_path: Path,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    site = tmp_path / "site"
    install_example_handlers(site)
    gateway = FakeGateway(settings)
    await prepare_database(database_url, settings)  # seeds the profile types
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """UPDATE profile_type SET allowed_request_types = '{echo,diagnostics.nap}'
               WHERE name = 'standard'"""
        )
        user = await create_user(
            connection, UserIn("napper", USER_PASSWORD, ["user"], "standard"), audit.SYSTEM
        )
        marker = tmp_path / "nap"
        nap = request(user.id, "diagnostics.nap", marker=str(marker), seconds=1.5)
        gateway.send([nap])
        log = tmp_path / "workers.log"
        workers.append(start_worker(settings, site, 18911, log))
        wait_until(marker.with_suffix(".1").exists, what="the first try to start", timeout_s=60)
        workers[0].send_signal(signal.SIGKILL)  # mid-run: no clean-up of any kind
        workers[0].wait()
        status = await connection.fetchval("SELECT status FROM request WHERE id = $1", nap.id)
        assert status == "processing"
        workers.append(start_worker(settings, site, 18912, log))

        async def finished() -> bool:
            value = await connection.fetchval("SELECT status FROM request WHERE id = $1", nap.id)
            return bool(value == "completed")

        deadline = time.monotonic() + 60
        while not await finished():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        attempts = await connection.fetchval("SELECT attempts FROM request WHERE id = $1", nap.id)
    finally:
        await connection.close()
    workers[1].send_signal(signal.SIGTERM)
    assert workers[1].wait(timeout=30) == 0
    assert attempts == 2
    responses = [
        r for r in await exported_records(settings, "response") if r["request_id"] == str(nap.id)
    ]
    assert [(r["status"], r["result"]["attempt"]) for r in responses] == [("completed", 2)]

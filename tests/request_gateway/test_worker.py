"""`request-gateway worker` as operators run it: exports, serves health, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from request_gateway.settings import GatewaySettings
from servicekit.testing import eventually, free_port, wait_until
from tests.request_gateway.conftest import Client, MakeMember


def _start_worker(settings: GatewaySettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_DATABASE_URL": str(settings.database_url),
        "GATEWAY_REDIS_URL": str(settings.redis_url),
        "GATEWAY_JWT_SECRET": settings.jwt_secret,
        "GATEWAY_WORKER_PORT": str(port),
        "GATEWAY_EXPORT_WINDOW_S": "0.2",
        "GATEWAY_LOG_FORMAT": "json",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "request_gateway.cli", "worker"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


async def test_the_worker_exports_queued_requests_and_stops_cleanly(
    client: Client,
    make_member: MakeMember,
    settings: GatewaySettings,
    tmp_path: Path,
    db: asyncpg.Connection[Any],
) -> None:
    member = await make_member()
    made = await client.post(
        "/api/v1/requests", json={"type": "echo", "payload": {}}, headers=member.headers
    )
    long_done = uuid.uuid4()  # finished before the retention: the worker's first pass purges it
    await db.execute(
        """INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at,
                               updated_at)
           VALUES ($1, $2, 'echo', '{}', 'completed', 't', $3, $3)""",
        long_done,
        member.id,
        datetime.now(UTC) - timedelta(days=settings.retention_days + 1),
    )
    port = free_port()
    worker = _start_worker(settings, port, tmp_path / "worker.log")
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, what="the worker's /health", timeout_s=60)
        wait_until(
            lambda: any(settings.outbox_path.glob("*.jsonl")),
            what="a batch in the outbox",
            timeout_s=30,
        )
        read = await client.get(f"/api/v1/requests/{made.json()['id']}", headers=member.headers)
        assert read.json()["status"] == "exported"
        gone = "SELECT NOT EXISTS (SELECT 1 FROM request WHERE id = $1)"
        await eventually(
            lambda: db.fetchval(gone, long_done), what="the old request purged", timeout_s=10
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    log = (tmp_path / "worker.log").read_text()
    assert "worker_stopped" in log
    assert settings.jwt_secret not in log

"""`request-gateway serve` drains on SIGTERM: a request in progress when the signal arrives
is finished and answered, no new connection is taken, and the server exits cleanly. A
rolling restart (docs/deployment.md, "Rolling restart") relies on it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec

from request_gateway.runtime import prepare_database
from servicekit.testing import MakeDatabase
from tests.request_gateway.live import STOP_TIMEOUT_S, live_settings, serve

# Long enough for the signal to reach granian while the body is still on its way.
HALFWAY_S = 1.0


async def test_a_submission_in_progress_at_sigterm_is_answered_then_the_server_exits(
    postgres_database: MakeDatabase, redis_server_url: str, tmp_path: Path
) -> None:
    database_url = postgres_database(prepare_database, key="request-gateway")
    # The body arrives 2 x HALFWAY_S after it started: well inside the body timeout (the
    # live settings' 2 s would answer 408 on a slow machine).
    settings = msgspec.structs.replace(
        live_settings(tmp_path, database_url, redis_server_url), body_timeout_s=30.0
    )
    with serve(settings, workers=1) as gateway:
        member = await gateway.member()
        body = json.dumps({"type": "echo", "payload": {"drain": True}}).encode()
        signalled = asyncio.Event()

        async def halves() -> AsyncIterator[bytes]:
            yield body[: len(body) // 2]
            await signalled.wait()
            yield body[len(body) // 2 :]

        headers = member.headers | {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Idempotency-Key": str(uuid.uuid4()),
        }
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            submit = asyncio.create_task(
                client.post("/api/v1/requests", content=halves(), headers=headers)
            )
            await asyncio.sleep(HALFWAY_S)
            os.killpg(gateway.process.pid, signal.SIGTERM)
            await asyncio.sleep(HALFWAY_S)
            signalled.set()
            response = await submit
        assert response.status_code == 202, response.text
        exit_code = await asyncio.to_thread(gateway.process.wait, STOP_TIMEOUT_S)
        assert exit_code == 0, gateway.output()
        async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as client:
            try:
                await client.get("/health/live")
            except httpx.ConnectError:
                pass
            else:
                raise AssertionError("the stopped server still answered")

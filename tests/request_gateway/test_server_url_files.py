"""`request-gateway serve` with its database and Redis URLs in secret files, as the compose
files give them (GATEWAY_DATABASE_URL_FILE, GATEWAY_REDIS_URL_FILE): its worker processes
start. They once refused to, finding both the URL the parent handed down and the _FILE."""

from __future__ import annotations

from pathlib import Path

import httpx

from request_gateway.runtime import prepare_database
from servicekit.testing import MakeDatabase
from tests.request_gateway.live import live_settings, serve


def test_workers_start_when_the_urls_come_from_files(
    postgres_module_database: MakeDatabase, redis_server_url: str, tmp_path: Path
) -> None:
    database_url = postgres_module_database(prepare_database, key="request-gateway")
    settings = live_settings(tmp_path, database_url, redis_server_url)
    with serve(settings, workers=2, url_files=True) as gateway:
        # Answered by a worker, which loads the settings from the environment it inherited;
        # the operations port (the parent) checks the database and Redis those URLs name.
        live = httpx.get(f"{gateway.url}/health/live", timeout=30)
        assert live.status_code == 200, gateway.output()
        health = httpx.get(f"{gateway.ops_url}/health", timeout=30)
        assert health.status_code == 200, gateway.output()
        assert gateway.stop() == 0, gateway.output()

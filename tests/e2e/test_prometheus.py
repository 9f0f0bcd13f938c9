"""A real Prometheus scrapes the running system with deploy/prometheus/prometheus.local.yml
(its demo ports replaced by this stack's) and finds our metrics, rules loaded."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no types

from servicekit.testing import free_port as _free_port
from servicekit.testing import need_tool
from tests.e2e.stack import Stack, running_stack

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "prometheus" / "prometheus.local.yml"
DEMO_PORTS = {  # prometheus.local.yml's targets → the launcher's port variables
    "127.0.0.1:8020": "DEMO_GATEWAY_OPS_PORT",
    "127.0.0.1:8021": "DEMO_PROCESSOR_OPS_PORT",
    "127.0.0.1:8002": "DEMO_AGENT_PORT",
    "127.0.0.1:8010": "DEMO_GATEWAY_WORKER_PORT",
    "127.0.0.1:8011": "DEMO_PROCESSOR_WORKER_PORT",
}

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack("prometheus") as stack:
        yield stack


def _config_for(stack: Stack, folder: Path) -> Path:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(CONFIG.parent / "rules" / "*.yml")]
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            group["targets"] = [
                f"127.0.0.1:{stack.run.ports[DEMO_PORTS[target]]}" for target in group["targets"]
            ]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _query(api: str, expression: str) -> list[dict[str, Any]]:
    """The query's result; empty while Prometheus is still starting (it answers plain text)."""
    try:
        answer = httpx.get(f"{api}/api/v1/query", params={"query": expression}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []
    if answer.get("status") != "success":
        return []
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_scrapes_every_process_and_queries_our_metrics(
    stack: Stack, tmp_path: Path
) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    prometheus = subprocess.Popen(
        [
            need_tool("prometheus", "prometheus"), f"--config.file={_config_for(stack, tmp_path)}",
            f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip
    try:
        # Traffic the metrics can show: a login on the gateway.
        user = stack.run.credentials()["user"]
        stack.login(user["username"], user["password"])
        deadline = time.monotonic() + 90
        while True:
            up = {r["metric"]["job"]: r["value"][1] for r in _query(api, "up")}
            requests = _query(api, 'sum by (job) (http_requests_total{job="gateway-api"})')
            link_age = _query(api, "link_last_inbound_age_seconds")
            if len(up) == len(DEMO_PORTS) and set(up.values()) == {"1"} and requests and link_age:
                break
            assert time.monotonic() < deadline, f"up={up} requests={requests} link={link_age}"
            time.sleep(1)
        rules = httpx.get(f"{api}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert sum(len(group["rules"]) for group in rules) > 0
    finally:
        prometheus.send_signal(signal.SIGTERM)
        prometheus.wait(timeout=20)

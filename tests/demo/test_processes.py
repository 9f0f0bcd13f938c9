"""What the demo runs, without running it: the processes, their ports and their names."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock_local.layout import DemoLayout
from airlock_local.processes import demo_processes, process_names
from airlock_local.servers import ServerUrls
from airlock_local.settings import load
from servicekit.settings import SettingsError

URLS = ServerUrls("postgresql:///gateway", "postgresql:///processor", "unix:///g", "unix:///p")


def test_one_worker_per_side_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("DEMO_GATEWAY_WORKERS", "DEMO_PROCESSOR_WORKERS"):
        monkeypatch.delenv(variable, raising=False)
    settings = load()
    services = demo_processes(DemoLayout.at(Path("demo")), settings, URLS).services
    assert [spec.name for spec in services] == [
        "processor-api",
        "processor-worker",
        "gateway-api",
        "gateway-worker",
        "transfer-agent",
    ]
    assert set(process_names(settings)) == {spec.name for spec in services} | {
        "processor-migrate",
        "gateway-migrate",
    }


def test_more_workers_get_their_own_names_and_consecutive_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_GATEWAY_WORKERS", "2")
    monkeypatch.setenv("DEMO_PROCESSOR_WORKERS", "3")
    monkeypatch.setenv("DEMO_GATEWAY_WORKER_PORT", "9100")
    monkeypatch.setenv("DEMO_PROCESSOR_WORKER_PORT", "9200")
    settings = load()
    services = demo_processes(DemoLayout.at(Path("demo")), settings, URLS).services
    workers = {spec.name: spec for spec in services if "worker" in spec.name}

    assert {name: spec.live_port for name, spec in workers.items()} == {
        "processor-worker": 9200,
        "processor-worker-2": 9201,
        "processor-worker-3": 9202,
        "gateway-worker": 9100,
        "gateway-worker-2": 9101,
    }
    assert workers["processor-worker-3"].env["PROCESSOR_WORKER_PORT"] == "9202"
    assert workers["gateway-worker-2"].env["GATEWAY_WORKER_PORT"] == "9101"
    assert workers["gateway-worker-2"].argv[1:] == ("worker",)
    assert set(workers) <= set(process_names(settings))
    # The ports the start-up check finds free and distinct include every worker's.
    assert {9100, 9101, 9200, 9201, 9202} <= set(settings.ports().values())


def test_workers_past_the_last_port_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_GATEWAY_WORKER_PORT", "65535")
    monkeypatch.setenv("DEMO_GATEWAY_WORKERS", "2")
    with pytest.raises(SettingsError, match="DEMO_GATEWAY_WORKERS"):
        load()

"""The real daemon as a subprocess: events, rescans, health, metrics, signals, several agents."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from functools import partial

from batchformat import verify_batch_file
from servicekit.testing import free_port, wait_until
from tests.transfer_agent.conftest import AgentProcess, Site, no_leftovers


def test_batches_are_delivered_as_they_appear(site: Site, agents: list[AgentProcess]) -> None:
    site.write_config()
    agents.append(AgentProcess(site).start())
    names = [site.batch().name for _ in range(5)]
    wait_until(lambda: site.delivered() == sorted(names), what="delivery")
    for name in names:
        assert verify_batch_file(site.destination / name, site.trusted).record_count == 3
    assert agents[0].stop() == 0
    assert no_leftovers(site) == []


def test_a_backlog_present_at_start_is_delivered(site: Site, agents: list[AgentProcess]) -> None:
    site.write_config()
    names = [site.batch().name for _ in range(20)]
    agents.append(AgentProcess(site).start())
    wait_until(lambda: len(site.delivered()) == 20, what="backlog delivery")
    assert site.delivered() == sorted(names)


def test_bad_inputs_are_quarantined_while_good_ones_flow(
    site: Site, agents: list[AgentProcess], stranger_key: object
) -> None:
    site.write_config()
    agents.append(AgentProcess(site).start())
    corrupt = site.batch()
    corrupt.write_bytes(corrupt.read_bytes().replace(b'"n":0', b'"n":5'))
    forged = site.batch(key=stranger_key)  # type: ignore[arg-type]
    good = site.batch()
    wait_until(lambda: site.delivered() == [good.name], what="good batch")
    wait_until(lambda: len(site.quarantined()) == 2, what="quarantine")
    assert site.quarantined() == sorted([corrupt.name, forged.name])


def test_strays_are_never_moved_and_reported_once(site: Site, agents: list[AgentProcess]) -> None:
    site.write_config()
    agent = AgentProcess(site).start()
    agents.append(agent)
    outside = site.batch(folder=site.root)
    link = site.source / outside.name.replace("__000000000001__", "__000000000099__")
    link.symlink_to(outside)
    (site.source / "README.txt").write_text("not a batch")
    (site.source / "sub").mkdir()
    good = site.batch()
    wait_until(lambda: site.delivered() == [good.name], what="good batch")
    time.sleep(2.5)  # two more rescans
    assert link.is_symlink()
    assert (site.source / "README.txt").exists()
    _, body = agent.get("/metrics") or (0, b"")
    metrics = body.decode()
    assert 'transfer_ignored_entries_total{kind="symlink",route="requests"} 1.0' in metrics
    assert (
        'transfer_ignored_entries_total{kind="unrecognised_name",route="requests"} 1.0' in metrics
    )
    assert 'transfer_ignored_entries_total{kind="directory",route="requests"} 1.0' in metrics
    assert len(agent.events("entry_ignored")) == 3


def test_health_and_metrics_answer(site: Site, agents: list[AgentProcess]) -> None:
    site.write_config()
    agent = AgentProcess(site).start()
    agents.append(agent)
    site.batch()
    wait_until(lambda: len(site.delivered()) == 1, what="delivery")
    status, body = agent.get("/health") or (0, b"")
    report = json.loads(body)
    assert status == 200
    assert report["status"] == "ok"
    assert set(report["checks"]) == {"requests:source", "requests:destination", "requests:delivery"}
    status, body = agent.get("/metrics") or (0, b"")
    text = body.decode()
    assert 'transfer_batches_delivered_total{route="requests"} 1.0' in text
    assert "transfer_delivery_delay_seconds_bucket" in text
    assert 'transfer_last_delivery_timestamp_seconds{route="requests"}' in text


def test_health_fails_when_a_folder_cannot_be_written(
    site: Site, agents: list[AgentProcess]
) -> None:
    site.write_config()
    agent = AgentProcess(site).start()
    agents.append(agent)
    shutil.rmtree(site.destination)
    site.destination.write_text("a file where the folder was")
    status, body = agent.get("/health") or (0, b"")
    assert status == 503
    assert json.loads(body)["checks"]["requests:destination"]["status"] == "fail"


def test_a_full_destination_pauses_the_route_until_space_returns(
    site: Site, agents: list[AgentProcess]
) -> None:
    # Reserve 1 GiB in the destination's file system, then ask for 512 MiB more than is free:
    # releasing the reservation makes room, and the route must resume by itself.
    filler = site.destination.parent / "filler"
    with filler.open("wb") as file:
        os.posix_fallocate(file.fileno(), 0, 1 << 30)
    threshold = shutil.disk_usage(site.destination).free + (512 << 20)
    site.write_config(min_free_bytes=threshold)
    agent = AgentProcess(site).start()
    agents.append(agent)
    batch = site.batch()

    def paused() -> bool:
        status, body = agent.get("/health") or (0, b"{}")
        check = json.loads(body).get("checks", {}).get("requests:delivery", {})
        return status == 200 and check.get("status") == "fail"

    wait_until(paused, what="health to report the pause")
    assert site.delivered() == []
    filler.unlink()
    wait_until(lambda: site.delivered() == [batch.name], timeout_s=20, what="resume")
    wait_until(lambda: bool(agent.events("route_resumed")), what="the resume to be logged")


def test_sigterm_stops_cleanly(site: Site, agents: list[AgentProcess]) -> None:
    site.write_config()
    agent = AgentProcess(site).start()
    agents.append(agent)
    site.batch(200_000, pad=50)  # ~17 MB, in progress when the signal comes
    time.sleep(0.05)
    started = time.monotonic()
    assert agent.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    assert not list(site.destination.glob(".*.part"))
    agents.append(AgentProcess(site, "second").start())
    wait_until(lambda: len(site.delivered()) == 1, what="delivery after restart")
    agents[-1].stop()
    assert no_leftovers(site) == []


def test_check_reports_problems_with_exit_code_1(site: Site) -> None:
    import subprocess

    from tests.transfer_agent.conftest import AGENT

    site.write_config()
    ok = subprocess.run([AGENT, "check", "--config", str(site.config_path)], capture_output=True)
    assert ok.returncode == 0, ok.stdout
    shutil.rmtree(site.destination)
    bad = subprocess.run(
        [AGENT, "check", "--config", str(site.config_path)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "destination" in bad.stdout
    assert "is not a folder" in bad.stdout
    site.config_path.write_text("[[routes]]\nname = 'x'\nsurprise = 1\n")
    bad = subprocess.run(
        [AGENT, "check", "--config", str(site.config_path)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "surprise" in bad.stderr
    usage = subprocess.run([AGENT, "check"], capture_output=True)
    assert usage.returncode == 2


def test_two_agents_on_one_route_deliver_each_batch_once(
    site: Site, agents: list[AgentProcess]
) -> None:
    site.write_config()
    first = AgentProcess(site, "first")
    agents.append(first)  # registered before it starts: killed at the end whatever happens
    first.start()
    site.port = free_port()  # the second agent listens elsewhere (port + 1 may be taken)
    site.write_config()
    second = AgentProcess(site, "second")
    agents.append(second)
    second.start()

    def delivered_events() -> list[str]:
        return [e["batch_id"] for a in (first, second) for e in a.events("batch_delivered")]

    def all_delivered(count: int) -> bool:
        return len(site.delivered()) == count and len(delivered_events()) >= count

    # Batches come in rounds until both agents have taken some (on a loaded machine one of
    # them can win a whole round); the log line follows the rename by a moment.
    names: list[str] = []
    while not (first.events("batch_delivered") and second.events("batch_delivered")):
        assert len(names) < 300, "both agents take part"
        names += [site.batch().name for _ in range(30)]
        wait_until(partial(all_delivered, len(names)), what="all deliveries and log lines")
    assert site.delivered() == sorted(names)
    delivered = delivered_events()
    assert sorted(delivered) == sorted(name.split("__")[2].removesuffix(".jsonl") for name in names)


def test_delivery_delay_counts_from_arrival_in_the_source(
    site: Site, agents: list[AgentProcess]
) -> None:
    site.write_config()
    agent = AgentProcess(site).start()
    agents.append(agent)
    staging = site.root / "staging"
    staging.mkdir()
    batch = site.batch(folder=staging)
    time.sleep(1.5)  # an old file: its modification time is not its arrival
    batch.rename(site.source / batch.name)
    wait_until(lambda: bool(agent.events("batch_delivered")), what="delivery")
    (event,) = agent.events("batch_delivered")
    assert event["delay_ms"] < 1000

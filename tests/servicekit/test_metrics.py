from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from servicekit.health import run_health_checks
from servicekit.metrics import (
    MULTIPROCESS_ENV,
    ProcessTreeCollector,
    declare_gauge,
    mark_worker_dead,
    prepare_multiprocess_dir,
    render_metrics,
)
from tests.servicekit.metrics_worker import count_jobs, declare_health_gauges


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _run_workers(*increments: int) -> list[int]:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=count_jobs, args=(count,)) for count in increments]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return [process.pid for process in processes if process.pid is not None]


@pytest.fixture
def multiprocess_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Set through monkeypatch first, so the variable is removed again after the test.
    monkeypatch.setenv(MULTIPROCESS_ENV, "")
    return prepare_multiprocess_dir(tmp_path / "prometheus")


def test_single_process_mode_renders_the_default_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    Counter("sk_test_single", "A counter").inc(3)

    body, content_type = render_metrics()

    assert content_type.startswith("text/plain")
    assert _samples(body)[("sk_test_single_total", ())] == 3.0


def test_prepare_multiprocess_dir_clears_old_samples_and_sets_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROCESS_ENV, "")
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"stale")
    (folder / "README").write_text("not ours")

    prepare_multiprocess_dir(folder)

    assert os.environ[MULTIPROCESS_ENV] == str(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["README"]


def test_multiprocess_mode_sums_counters_of_all_workers(multiprocess_dir: Path) -> None:
    _run_workers(2, 3)

    body, _ = render_metrics()

    samples = _samples(body)
    assert samples[("sk_test_jobs_total", (("kind", "echo"),))] == 5.0
    assert samples[("sk_test_in_flight", ())] == 4.0


def test_dead_workers_leave_live_gauges_but_keep_their_counts(multiprocess_dir: Path) -> None:
    first, second = _run_workers(1, 1)

    mark_worker_dead(first)

    samples = _samples(render_metrics()[0])
    assert samples[("sk_test_in_flight", ())] == 2.0
    assert samples[("sk_test_jobs_total", (("kind", "echo"),))] == 2.0
    mark_worker_dead(second)
    assert ("sk_test_in_flight", ()) not in _samples(render_metrics()[0])


def test_health_status_is_the_checking_process_not_the_workers_unset_zeros(
    multiprocess_dir: Path,
) -> None:
    # The gateway API's layout: workers that declare the health metrics but never check, and
    # a supervisor (here, this process: prometheus-client was imported before the folder was
    # set) that runs the checks for /metrics and renders the workers' files.
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=declare_health_gauges)
    worker.start()
    worker.join(timeout=60)
    assert worker.exitcode == 0

    asyncio.run(run_health_checks([]))

    assert _samples(render_metrics()[0])[("health_status", ())] == 1.0


def test_declare_gauge_works_in_a_single_process() -> None:
    gauge = declare_gauge("sk_test_queue_depth", "Queued", multiprocess_mode="max", registry=None)
    gauge.set(7)
    assert gauge._value.get() == 7


_HOLD_64_MIB = (
    "import sys; b = bytearray(b'x' * (64 << 20)); print('ready', flush=True); sys.stdin.read()"
)


def test_the_process_tree_memory_counts_the_children() -> None:
    collector = ProcessTreeCollector()
    alone = collector.resident_bytes(os.getpid())
    assert alone is not None
    assert alone > 0
    # A child holding 64 MiB resident: the tree grows by at least that much.
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_64_MIB],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        with_child = collector.resident_bytes(os.getpid())
    finally:
        child.communicate(b"")
    assert with_child is not None
    assert with_child - alone >= 60 << 20


def test_the_process_tree_memory_is_in_the_rendered_metrics() -> None:
    body, _ = render_metrics()
    assert b"process_tree_resident_memory_bytes " in body

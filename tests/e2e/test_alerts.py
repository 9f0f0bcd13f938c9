"""Alerts reach someone: the stack as `make demo` runs it, a real Prometheus (Debian's)
scraping it with the shipped rules, a real Alertmanager (Debian's prometheus-alertmanager)
with the shipped routing and templates, and a real SMTP server run here (aiosmtpd).

Timings are shortened the documented way (docs/operations.md, "Rehearse alert delivery"):
deploy/prometheus/rehearsal.py writes the rules with short `for:` durations and a lower
stale-link threshold, render-config.sh takes short grouping intervals, and the scrape and
evaluation intervals are 1 s. A process is "stopped" by freezing its process group
(SIGSTOP): the demo's supervisor restarts a process that exits, a frozen one stays down.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no types
from aiosmtpd.controller import Controller

from servicekit.testing import free_port as _free_port
from servicekit.testing import need_tool
from tests.e2e.stack import Stack, running_stack

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"
DEMO_PORTS = {  # prometheus.local.yml's targets → the launcher's port variables
    "127.0.0.1:8020": "DEMO_GATEWAY_OPS_PORT",
    "127.0.0.1:8021": "DEMO_PROCESSOR_OPS_PORT",
    "127.0.0.1:8002": "DEMO_AGENT_PORT",
    "127.0.0.1:8010": "DEMO_GATEWAY_WORKER_PORT",
    "127.0.0.1:8011": "DEMO_PROCESSOR_WORKER_PORT",
}
RUNBOOKS = "https://docs.example.org/airlock/"
# The stack's heartbeats come every 2 s (tests/e2e/stack.py): 15 s of silence is stale.
STALE_AFTER_S = 15
MAIL_TIMEOUT_S = 60.0

pytestmark = pytest.mark.timeout(400)


class Mailbox:
    """The messages the SMTP server received, for the test to wait on."""

    def __init__(self) -> None:
        self._messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: keep the message."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(message)
        return "250 OK"

    def wait_for(self, matches: Callable[[str, str], bool], what: str) -> tuple[str, str]:
        """The first message whose (subject, text body) `matches`, waiting for it."""
        deadline = time.monotonic() + MAIL_TIMEOUT_S
        while time.monotonic() < deadline:
            with self._lock:
                messages = list(self._messages)
            for message in messages:
                subject = str(message["subject"])
                body = message.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                if matches(subject, text):
                    return subject, text
            time.sleep(0.5)
        with self._lock:
            subjects = [str(m["subject"]) for m in self._messages]
        raise AssertionError(f"no e-mail {what} within {MAIL_TIMEOUT_S:.0f} s; got {subjects}")


@dataclass
class Alerting:
    """Prometheus, Alertmanager and the SMTP server, around a running stack."""

    stack: Stack
    mailbox: Mailbox
    prometheus_api: str

    def query(self, expression: str) -> dict[str, float]:
        """An instant query's samples by job (empty while Prometheus starts)."""
        try:
            answer = httpx.get(
                f"{self.prometheus_api}/api/v1/query", params={"query": expression}, timeout=5
            ).json()
        except (httpx.HTTPError, ValueError):
            return {}
        if answer.get("status") != "success":
            return {}
        return {
            sample["metric"].get("job", ""): float(sample["value"][1])
            for sample in answer["data"]["result"]
        }

    def wait_until(self, expression: str, check: Callable[[dict[str, float]], bool]) -> None:
        """Wait until the query's samples pass `check`."""
        deadline = time.monotonic() + MAIL_TIMEOUT_S
        samples: dict[str, float] = {}
        while time.monotonic() < deadline:
            samples = self.query(expression)
            if check(samples):
                return
            time.sleep(1)
        raise AssertionError(f"{expression}: {samples}")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack("alerts") as stack:
        yield stack


def _rehearsal_rules(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, str(PROMETHEUS_DIR / "rehearsal.py"), "--out", str(folder),
         "--for", "3s", "--threshold", f"AirlockPeerLinkStale={STALE_AFTER_S}",
         *map(str, sorted((PROMETHEUS_DIR / "rules").glob("*.yml")))],
        check=True,
    )  # fmt: skip
    return folder


def _prometheus_config(stack: Stack, folder: Path, alertmanager_port: int) -> Path:
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.local.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(_rehearsal_rules(folder / "rules") / "*.yml")]
    (group,) = config["alerting"]["alertmanagers"][0]["static_configs"]
    group["targets"] = [f"127.0.0.1:{alertmanager_port}"]
    for job in config["scrape_configs"]:
        for targets in job["static_configs"]:
            targets["targets"] = [
                f"127.0.0.1:{stack.run.ports[DEMO_PORTS[t]]}" for t in targets["targets"]
            ]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _alertmanager_config(folder: Path, smtp_port: int) -> Path:
    settings = folder / "alerting"
    settings.mkdir()
    for name, value in {
        "smtp_smarthost": f"127.0.0.1:{smtp_port}",
        "smtp_from": "airlock-alerts@example.org",
        "smtp_to": "admins@example.org",
        "smtp_require_tls": "false",
        "runbook_base_url": RUNBOOKS,
    }.items():
        (settings / name).write_text(value + "\n")
    timings = {
        "ALERT_GROUP_WAIT": "1s",
        "ALERT_CRITICAL_GROUP_WAIT": "1s",
        "ALERT_GROUP_INTERVAL": "2s",
    }
    out = folder / "alertmanager"
    subprocess.run(
        ["sh", str(ALERTMANAGER_DIR / "render-config.sh"), str(settings), str(out)],
        check=True, env={**os.environ, **timings},
    )  # fmt: skip
    return out / "alertmanager.yml"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def alerting(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    prometheus_bin = need_tool("prometheus", "prometheus")
    alertmanager_bin = need_tool("prometheus-alertmanager", "prometheus-alertmanager")
    folder = tmp_path_factory.mktemp("alerting")
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    alertmanager_port = _free_port()
    prometheus_port = _free_port()
    alertmanager = subprocess.Popen(
        [alertmanager_bin, f"--config.file={_alertmanager_config(folder, smtp.port)}",
         f"--storage.path={folder / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{alertmanager_port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=(folder / "alertmanager.log").open("wb"),
    )  # fmt: skip
    prometheus = subprocess.Popen(
        [prometheus_bin, f"--config.file={_prometheus_config(stack, folder, alertmanager_port)}",
         f"--storage.tsdb.path={folder / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}", "--rules.alert.resend-delay=1s"],
        stdout=subprocess.DEVNULL, stderr=(folder / "prometheus.log").open("wb"),
    )  # fmt: skip
    try:
        yield Alerting(stack, mailbox, f"http://127.0.0.1:{prometheus_port}")
    finally:
        _stop(prometheus)
        _stop(alertmanager)
        smtp.stop()


def _is(status: str, alert: str, job: str | None = None) -> Callable[[str, str], bool]:
    def matches(subject: str, text: str) -> bool:
        return (
            subject.startswith(f"[{status}")
            and f" {alert} " in f"{subject} "
            and (job is None or f"job:      {job}" in text)
        )

    return matches


JOBS = {"gateway-api", "gateway-worker", "processor-api", "processor-worker", "transfer-agent"}


def test_every_process_exports_its_health_log_counts_and_folders_free_space(
    alerting: Alerting,
) -> None:
    # health_status comes from /metrics running the /health checks: 1 everywhere when well.
    alerting.wait_until(
        "min by (job) (health_status)", lambda s: set(s) == JOBS and set(s.values()) == {1.0}
    )
    alerting.wait_until(
        'sum by (job) (log_messages_total{level="info"})',
        lambda s: set(s) == JOBS and min(s.values()) > 0,
    )
    alerting.wait_until(
        "min by (job) (folder_free_bytes)",
        lambda s: (
            {"gateway-worker", "processor-worker", "transfer-agent"} <= set(s)
            and min(s.values()) > 0
        ),
    )
    # The gateway API serves its workers' samples from its supervisor: their memory together.
    alerting.wait_until(
        'process_tree_resident_memory_bytes{job="gateway-api"}',
        lambda s: s.get("gateway-api", 0) > 32 * 1024 * 1024,
    )


def test_a_stopped_processor_worker_mails_the_admins_and_its_return_mails_resolved(
    alerting: Alerting,
) -> None:
    instance = f"127.0.0.1:{alerting.stack.run.ports['DEMO_PROCESSOR_WORKER_PORT']}"
    with alerting.stack.paused("processor-worker"):
        subject, text = alerting.mailbox.wait_for(
            _is("FIRING", "AirlockWorkerDown", "processor-worker"), "for the stopped worker"
        )
    assert instance in subject
    assert f"instance: {instance}" in text
    assert "processor-worker on " + instance + " is down" in text
    assert f"runbook:  {RUNBOOKS}docs/operations.md#alert-airlockworkerdown" in text

    subject, text = alerting.mailbox.wait_for(
        _is("RESOLVED", "AirlockWorkerDown", "processor-worker"), "resolving the worker"
    )
    assert f"instance: {instance}" in text
    assert "resolved: " in text


def test_a_stopped_transfer_agent_mails_the_stale_link_and_then_its_recovery(
    alerting: Alerting,
) -> None:
    with alerting.stack.paused("transfer-agent"):
        _, text = alerting.mailbox.wait_for(
            _is("FIRING", "AirlockPeerLinkStale"), "for the stale link"
        )
    assert "nothing from " in text
    assert f"runbook:  {RUNBOOKS}docs/operations.md#alert-airlockpeerlinkstale" in text
    _, text = alerting.mailbox.wait_for(_is("RESOLVED", "AirlockPeerLinkStale"), "link recovery")
    assert "resolved: " in text

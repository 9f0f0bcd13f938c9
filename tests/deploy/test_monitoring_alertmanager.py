"""Alertmanager's configuration (deploy/alertmanager): rendered from a secrets folder by
render-config.sh, accepted by amtool, routing by severity, the password never copied; the
compose services and the systemd unit that run it. amtool is Debian's prometheus-alertmanager
(make check-deploy installs it)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from servicekit.testing import need_tool
from tests.deploy.deployfiles import DEPLOY, SYSTEMD_DIR, load_yaml, unit_values

RENDER = DEPLOY / "alertmanager" / "render-config.sh"
PASSWORD = "Vq3x9TfL2pRm8sKdXw4ZJ6yN"


def _amtool() -> str:
    return need_tool("amtool", "prometheus-alertmanager")


def _settings(folder: Path, **extra: str) -> Path:
    folder.mkdir()
    values = {
        "smtp_smarthost": "smtp.example.org:587",
        "smtp_from": "airlock@example.org",
        "smtp_to": "ops@example.org",
        "smtp_username": "airlock",
        "smtp_password": PASSWORD,
        **extra,
    }
    for name, value in values.items():
        (folder / name).write_text(value + "\n")
    return folder


def _render(secrets: Path, out: Path) -> dict[str, Any]:
    subprocess.run(["sh", str(RENDER), str(secrets), str(out)], check=True)
    subprocess.run([_amtool(), "check-config", str(out / "alertmanager.yml")], check=True)
    config: dict[str, Any] = load_yaml(out / "alertmanager.yml")
    return config


def test_the_rendered_configuration_passes_amtool_and_never_holds_the_password(
    tmp_path: Path,
) -> None:
    secrets = _settings(tmp_path / "secrets")
    config = _render(secrets, tmp_path / "out")
    assert config["global"]["smtp_auth_password_file"] == str(secrets / "smtp_password")
    assert PASSWORD not in (tmp_path / "out" / "alertmanager.yml").read_text()
    assert (tmp_path / "out" / "alertmanager.yml").stat().st_mode & 0o077 == 0
    (receiver,) = config["receivers"]
    assert receiver["email_configs"][0]["to"] == "ops@example.org"
    assert "webhook_configs" not in receiver


def test_a_webhook_url_file_adds_the_webhook(tmp_path: Path) -> None:
    secrets = _settings(tmp_path / "secrets", webhook_url="https://hooks.example.org/x")
    (receiver,) = _render(secrets, tmp_path / "out")["receivers"]
    assert receiver["webhook_configs"][0]["url"] == "https://hooks.example.org/x"
    assert receiver["webhook_configs"][0]["send_resolved"] is True


def test_without_a_password_no_smtp_auth_is_configured(tmp_path: Path) -> None:
    secrets = _settings(tmp_path / "secrets")
    (secrets / "smtp_password").unlink()
    config = _render(secrets, tmp_path / "out")
    assert "smtp_auth_password_file" not in config["global"]


def test_a_missing_required_setting_is_named(tmp_path: Path) -> None:
    secrets = _settings(tmp_path / "secrets")
    (secrets / "smtp_to").unlink()
    result = subprocess.run(
        ["sh", str(RENDER), str(secrets), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "smtp_to is missing" in result.stderr


@pytest.mark.parametrize(
    ("labels", "repeat"),
    [("severity=critical", "1h"), ("severity=warning", "12h")],
)
def test_both_severities_reach_the_admins(tmp_path: Path, labels: str, repeat: str) -> None:
    _render(_settings(tmp_path / "secrets"), tmp_path / "out")
    routed = subprocess.run(
        [_amtool(), "config", "routes", "test",
         f"--config.file={tmp_path / 'out' / 'alertmanager.yml'}", "alertname=X", labels],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert routed.stdout.strip() == "airlock-admins"
    config = load_yaml(tmp_path / "out" / "alertmanager.yml")
    name, value = labels.split("=")
    (route,) = [r for r in config["route"]["routes"] if r["matchers"] == [f'{name}="{value}"']]
    assert route["repeat_interval"] == repeat


def test_a_down_worker_inhibits_its_backlog_on_the_same_network(tmp_path: Path) -> None:
    config = _render(_settings(tmp_path / "secrets"), tmp_path / "out")
    down = [r for r in config["inhibit_rules"] if "AirlockWorkerDown" in r["source_matchers"][0]]
    (rule,) = down
    assert "AirlockProcessingBacklog" in rule["target_matchers"][0]
    assert "AirlockPeerLinkStale" in rule["target_matchers"][0]
    assert rule["equal"] == ["network"]


@pytest.mark.parametrize("side", ["request", "response"])
def test_each_monitoring_stack_runs_an_alertmanager_its_prometheus_sends_to(side: str) -> None:
    compose = load_yaml(DEPLOY / "compose" / f"monitoring-{side}.yml")
    alertmanager = compose["services"]["alertmanager"]
    assert "render-config.sh" in alertmanager["command"][0]
    prometheus = load_yaml(DEPLOY / "prometheus" / f"prometheus.{side}-net.yml")
    (target,) = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == "alertmanager:9093"
    # Alertmanager joins neither network's internal segment: it only needs Prometheus and SMTP.
    assert alertmanager["networks"] == ["default"]


def test_the_systemd_unit_renders_then_runs_debians_alertmanager() -> None:
    path = SYSTEMD_DIR / "airlock-alertmanager.service"
    starts = unit_values(path, "Service", "ExecStartPre")
    assert any("render-config.sh /etc/airlock/alerting" in line for line in starts)
    (command,) = unit_values(path, "Service", "ExecStart")
    assert command.startswith("/usr/bin/prometheus-alertmanager")
    assert "--web.listen-address=127.0.0.1:9093" in command
    assert unit_values(path, "Service", "NoNewPrivileges") == ["yes"]


@pytest.mark.parametrize(
    "value", ['ops"@example.org', "ops\\@example.org"], ids=["quote", "backslash"]
)
def test_a_setting_that_would_break_out_of_its_yaml_string_is_refused(
    tmp_path: Path, value: str
) -> None:
    secrets = _settings(tmp_path / "secrets", smtp_to=value)
    result = subprocess.run(
        ["sh", str(RENDER), str(secrets), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "holds a quote or backslash" in result.stderr
    assert not (tmp_path / "out" / "alertmanager.yml").exists()

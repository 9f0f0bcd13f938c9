"""Prometheus configuration, alert rules and the Grafana dashboard refer to what exists: jobs
that are scraped, metric names the code exports (read from a running app and the metric
modules), and runbook anchors in one pattern. promtool itself checks the files in
`make check-deploy`; here it also parses the dashboard's queries when it is installed."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings
from servicekit.backup_schedule import backup_metrics
from servicekit.health import folder_check
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from servicekit.testing import need_tool
from tests.deploy.deployfiles import (
    COMPOSE_DIR,
    DEPLOY,
    PROMETHEUS_DIR,
    compose_services,
    load_yaml,
)
from transfer_agent.config import AgentSection

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "airlock.json"
METRIC_MODULES = (
    "airlink.metrics",
    "servicekit.database",
    "servicekit.health",
    "servicekit.logs",
    "servicekit.metrics",
    "servicekit.ratelimit",
    "transfer_agent.metrics",
    "response_processor.metrics",
    "request_gateway.metrics",
)
PROMETHEUS_OWN = {
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "info": ("_info",),
}
# The concerns the operators asked alerts for, and the alert that covers each.
REQUIRED_ALERTS = {
    "worker down": "AirlockWorkerDown",
    "API p95 over 500 ms": "AirlockApiLatencyHigh",
    "error rate over 0.1%": "AirlockApiErrorRateHigh",
    "disk space": "AirlockDropZoneSpaceLow",
    "memory": "AirlockMemoryHigh",
    "dead letters": "AirlockDeadLetters",
    "quarantined batches (link)": "AirlockBatchQuarantined",
    "quarantined batches (agent)": "AirlockTransferRejected",
    "stale peer link": "AirlockPeerLinkStale",
    "unacknowledged batches": "AirlockBatchesUnacknowledged",
    "oldest unanswered request": "AirlockOldestRequestUnanswered",
    "error log lines": "AirlockErrorLogs",
    "database pool saturated": "AirlockDatabasePoolSaturated",
    "rate limiter failed open": "AirlockRateLimiterFailedOpen",
    "up but /health fails": "AirlockProcessUnhealthy",
    "disk space of every checked folder": "AirlockFolderSpaceLow",
    "gateway API memory with several workers": "AirlockApiMemoryHigh",
}
JOBS = {"gateway-api", "gateway-worker", "processor-api", "processor-worker", "transfer-agent"}
# The scheduled backups' metrics (`backup --dir --loop --metrics-port`), in compose only: the
# systemd layout writes them for node_exporter's textfile collector instead.
BACKUP_JOBS = {"gateway-backup", "processor-backup"}


def _http_metric_families() -> dict[str, Any]:
    """Serve a few requests (one failing) through servicekit's plugin; its metrics, by name."""

    @get("/ok", sync_to_thread=False)
    def ok() -> str:
        return "ok"

    @get("/boom", sync_to_thread=False)
    def boom() -> str:
        raise RuntimeError("a bug")

    # A folder check, so that the scrape (which runs the checks) measures one folder too.
    folder = folder_check(Path(tempfile.gettempdir()), min_free_bytes=0, name="probe")
    config = ServiceKitConfig(service="probe", health_checks=lambda app: [folder])
    app = Litestar([ok, boom], plugins=[ServiceKitPlugin(config)])
    with TestClient(app) as client:
        assert client.get("/ok").status_code == 200
        assert client.get("/boom").status_code == 500
        assert client.get("/metrics").status_code == 200
    return {family.name: family for family in REGISTRY.collect()}


@pytest.fixture(scope="module")
def exported_metrics() -> set[str]:
    """Every sample name the code can export: its metric modules and servicekit's HTTP ones."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    families = list(_http_metric_families().values())
    # The backup schedule's own registry (servicekit.backup_schedule), read from its folder.
    families += backup_metrics(Path("/nonexistent"), "db", 3600).collect()
    names = set(PROMETHEUS_OWN)
    for family in families:
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return exprs


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTORS = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w:.])[a-zA-Z_:][\w:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan", "e"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    bare = _SELECTORS.sub(" ", _GROUPING.sub(" ", _STRINGS.sub(" ", expr)))
    return {
        match[0]
        for match in _NAME.finditer(bare)
        if match[0].lower() not in _KEYWORDS and not bare[match.end() :].lstrip().startswith("(")
    }


def test_the_name_reader_finds_metrics_and_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (job, le) (rate(x_bucket{job=~"a|b"}[5m]))) > 0.5 '
        "and on (job) up == 1 or max(y) by (z) / ignoring(k) w:rate5m"
    )
    assert metric_names(expr) == {"x_bucket", "up", "y", "w:rate5m"}


def test_servicekit_exports_the_http_metrics_the_rules_use() -> None:
    families = _http_metric_families()
    duration = families["http_request_duration_seconds"]
    assert duration.type == "histogram"
    buckets = {s.labels["le"] for s in duration.samples if s.name.endswith("_bucket")}
    assert "0.5" in buckets, "the 500 ms objective needs a bucket boundary at 0.5"
    failed = [
        s
        for s in families["http_requests"].samples
        if s.labels.get("app_name") == "probe" and s.name == "http_requests_total"
    ]
    assert {(s.labels["path"], s.labels["status_code"]) for s in failed} >= {
        ("/ok", "200"),
        ("/boom", "500"),
    }


def test_rules_refer_to_exported_metrics_and_recorded_series(exported_metrics: set[str]) -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - exported_metrics - recorded
        assert not unknown, f"{rule.get('alert') or rule['record']}: no such metric {unknown}"


def test_dashboard_panels_refer_to_exported_metrics_and_recorded_series(
    exported_metrics: set[str],
) -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for expr in _dashboard_exprs():
        unknown = metric_names(expr) - exported_metrics - recorded
        assert not unknown, f"dashboard query {expr!r}: no such metric {unknown}"


def test_every_concern_has_its_alert() -> None:
    missing = {concern for concern, alert in REQUIRED_ALERTS.items() if alert not in _alerts()}
    assert not missing


@pytest.mark.parametrize("name", sorted(_alerts()))
def test_every_alert_has_a_severity_summary_description_and_runbook(name: str) -> None:
    rule = _alerts()[name]
    assert rule["labels"]["severity"] in ("critical", "warning")
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    assert annotations["runbook"] == f"docs/operations.md#alert-{name.lower()}"


def test_every_alert_has_a_promtool_test_case() -> None:
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert not set(_alerts()) - tested, "alerts without a firing promtool test case"


def test_rules_select_only_jobs_that_are_scraped() -> None:
    for rule in _rules():
        for pattern in re.findall(r'job=~?"([^"]+)"', rule["expr"]):
            assert any(re.fullmatch(pattern, job) for job in JOBS | BACKUP_JOBS), pattern


NETWORK_CONFIGS = [
    PROMETHEUS_DIR / "prometheus.request-net.yml",
    PROMETHEUS_DIR / "prometheus.response-net.yml",
]


def _jobs(path: Path) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in load_yaml(path)["scrape_configs"]}


def test_the_prometheus_configs_scrape_every_process() -> None:
    sides = [set(_jobs(path)) - {"prometheus"} for path in NETWORK_CONFIGS]
    assert sides[0] | sides[1] == JOBS | BACKUP_JOBS
    assert not sides[0] & sides[1]  # each process by the Prometheus of its own network
    assert set(_jobs(PROMETHEUS_DIR / "prometheus.local.yml")) == JOBS


def test_the_local_config_scrapes_the_demo_ports() -> None:
    gateway, processor = GatewaySettings(), ProcessorSettings()
    ports = {
        "gateway-api": gateway.ops_port,
        "gateway-worker": gateway.worker_port,
        "processor-api": processor.ops_port,
        "processor-worker": processor.worker_port,
        "transfer-agent": AgentSection().host_port[1],
    }
    assert ports == {"gateway-api": 8020, "gateway-worker": 8010, "processor-api": 8021,
                     "processor-worker": 8011, "transfer-agent": 8002}  # fmt: skip
    for name, job in _jobs(PROMETHEUS_DIR / "prometheus.local.yml").items():
        (target,) = job["static_configs"][0]["targets"]
        assert target == f"127.0.0.1:{ports[name]}"


def test_the_compose_config_scrapes_each_service_on_the_port_it_checks() -> None:
    services = {
        name: service
        for path in COMPOSE_DIR.glob("*.yml")
        for name, service in compose_services(path).items()
    }
    jobs = {name: job for path in NETWORK_CONFIGS for name, job in _jobs(path).items()}
    for name, job in jobs.items():
        if name == "prometheus":
            continue
        if "dns_sd_configs" in job:
            (sd,) = job["dns_sd_configs"]
            (host,), port = sd["names"], sd["port"]
        else:
            (target,) = job["static_configs"][0]["targets"]
            host, _, port_text = target.partition(":")
            port = int(port_text)
        assert host == name, "jobs are named after their compose service (or its replicas' alias)"
        # The service, or its replicas: the services that answer to that name (an alias).
        named = [services[host]] if host in services else [
            service for service in services.values()
            if host in (_aliases(service))
        ]  # fmt: skip
        assert named, f"no compose service answers to {host}"
        for service in named:
            health = " ".join(service["healthcheck"]["test"])
            # Scraped where the container's health check looks (an API: its operations port;
            # a backup schedule: its metrics, all it serves).
            url = f"{job.get('scheme', 'http')}://127.0.0.1:{port}"
            assert f"{url}/health/live" in health or (
                name in BACKUP_JOBS and f"{url}/metrics" in health
            )


def _aliases(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks") or {}
    if not isinstance(networks, dict):
        return set()
    return {alias for spec in networks.values() for alias in (spec or {}).get("aliases", [])}


def test_the_dashboard_is_valid_and_shows_each_figure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["x"] >= 0
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    shown = set().union(*(metric_names(expr) for expr in _dashboard_exprs()))
    figures = {
        "request rate": "job:http_requests:rate5m",
        "p95 latency": "job:http_request_duration_seconds:p95_5m",
        "error rate": "job:http_requests_5xx:ratio5m",
        "queue": "processor_queue_depth",
        "pending": "gateway_oldest_pending_request_age_seconds",
        "dead letters": "processor_dead_letters_total",
        "quarantines": "link_quarantined_total",
        "agent rejects": "transfer_batches_rejected_total",
        "link age": "link_last_inbound_age_seconds",
        "unacknowledged batches": "link_unacknowledged_batches",
        "memory": "process_resident_memory_bytes",
    }
    assert {figure for figure, metric in figures.items() if metric not in shown} == set()


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": expr}
                    for i, expr in enumerate(_dashboard_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.json"  # JSON is YAML
    path.write_text(json.dumps(rules))
    result = subprocess.run(
        [need_tool("promtool", "prometheus"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

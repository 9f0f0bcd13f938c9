"""The compose files keep the two networks apart and publish nothing operators alone need.

Every compose network is on one side (request or response) or is the transfer agent's own; no
service joins networks of both sides (one Prometheus per side, no shared monitoring network),
each side's internal segment is internal, and an API publishes its users' port only (its
operations port, /health and /metrics, stays on the internal network).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest

from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings
from tests.deploy.deployfiles import COMPOSE_FILES, all_compose_services, load_compose

# Every network of every compose file, by the name the engine creates, and its side.
SIDES: Final = {
    "airlock-request-net": "request",
    "airlock-request-edge": "request",
    "airlock-monitoring-request": "request",
    "airlock-response-net": "response",
    "airlock-response-edge": "response",
    "airlock-monitoring-response": "response",
    "airlock-transfer": "boundary",
}
INTERNAL_SEGMENTS: Final = {"request": "airlock-request-net", "response": "airlock-response-net"}
SERVICES = list(all_compose_services())
IDS = [f"{path.stem}:{name}" for path, name, _ in SERVICES]


def _network_names(path: Path) -> dict[str, str]:
    """A compose file's network keys → the engine's network names (`default` included)."""
    declared: dict[str, dict[str, Any]] = load_compose(path).get("networks") or {}
    project = load_compose(path)["name"]
    names = {key: (spec or {}).get("name", f"{project}_{key}") for key, spec in declared.items()}
    names.setdefault("default", f"{project}_default")
    return names


def _joined(path: Path, service: dict[str, Any]) -> set[str]:
    networks = service.get("networks") or ["default"]
    keys = list(networks) if isinstance(networks, dict) else networks
    names = _network_names(path)
    return {names[key] for key in keys}


def test_every_network_is_on_one_known_side() -> None:
    for path in COMPOSE_FILES:
        for key, name in _network_names(path).items():
            if key == "default" and not any(
                "default" in (s.get("networks") or ["default"]) for s in
                load_compose(path)["services"].values()
            ):  # fmt: skip
                continue  # declared by compose, joined by nobody
            assert name in SIDES, f"{path.name}: network {key} ({name}) belongs to no side"


@pytest.mark.parametrize(("path", "name", "service"), SERVICES, ids=IDS)
def test_no_service_joins_both_networks(path: Path, name: str, service: dict[str, Any]) -> None:
    sides = {SIDES[network] for network in _joined(path, service)} - {"boundary"}
    assert len(sides) <= 1, f"{path.name}:{name} joins {sorted(_joined(path, service))}"
    internal = set(INTERNAL_SEGMENTS.values())
    assert len(_joined(path, service) & internal) <= 1


def test_each_side_has_its_own_prometheus_on_its_internal_segment() -> None:
    prometheus = {
        path.stem: _joined(path, service)
        for path, name, service in SERVICES
        if "prom/prometheus" in service.get("image", "")
    }
    assert {
        stem: joined & set(INTERNAL_SEGMENTS.values()) for stem, joined in prometheus.items()
    } == {
        "monitoring-request": {"airlock-request-net"},
        "monitoring-response": {"airlock-response-net"},
    }


def test_the_internal_segments_are_internal() -> None:
    for path in COMPOSE_FILES:
        declared = load_compose(path).get("networks") or {}
        for spec in declared.values():
            if (spec or {}).get("name") in INTERNAL_SEGMENTS.values() and not spec.get("external"):
                assert spec.get("internal") is True, f"{path.name}: {spec['name']}"


@pytest.mark.parametrize(
    ("stem", "service", "ops_variable", "default_ops_port"),
    [
        ("request-net", "gateway-api-1", "GATEWAY_OPS_PORT", GatewaySettings().ops_port),
        ("request-net", "gateway-api-2", "GATEWAY_OPS_PORT", GatewaySettings().ops_port),
        ("response-net", "processor-api", "PROCESSOR_OPS_PORT", ProcessorSettings().ops_port),
    ],
)
def test_an_api_publishes_no_operations_port(
    stem: str, service: str, ops_variable: str, default_ops_port: int
) -> None:
    (path,) = [p for p in COMPOSE_FILES if p.stem == stem]
    spec = load_compose(path)["services"][service]
    ops_port = int(spec["environment"].get(ops_variable, default_ops_port))
    published = [str(port).rsplit(":", 1)[-1] for port in spec.get("ports", [])]
    assert str(ops_port) not in published


def test_the_admin_api_admits_only_listed_networks_and_trusts_only_its_proxy() -> None:
    (path,) = [p for p in COMPOSE_FILES if p.stem == "response-net"]
    document = load_compose(path)
    environment = document["services"]["processor-api"]["environment"]
    assert environment["PROCESSOR_ADMIN_ALLOWED_NETWORKS"]
    settings = ProcessorSettings(
        admin_allowed_networks=environment["PROCESSOR_ADMIN_ALLOWED_NETWORKS"].split(","),
        trusted_proxies=environment["PROCESSOR_TRUSTED_PROXIES"].split(","),
    )
    (edge,) = document["networks"]["edge"]["ipam"]["config"]
    assert settings.trusted_proxies == [edge["subnet"]]  # the proxy's network, nothing else
    assert document["services"]["proxy"]["networks"] == ["edge"]


GATEWAY_REPLICAS: Final = ("gateway-api-1", "gateway-api-2")


def test_the_gateway_replicas_publish_nothing_and_trust_only_their_proxy() -> None:
    """Users reach the replicas through the proxy alone (request-net.yml, caddy-request/):
    the replicas publish no port, leave TLS to the proxy, and believe X-Forwarded-For from
    the proxy's network only, which the proxy joins and nothing else."""
    (path,) = [p for p in COMPOSE_FILES if p.stem == "request-net"]
    document = load_compose(path)
    services = document["services"]
    (edge,) = document["networks"]["edge"]["ipam"]["config"]
    for name in GATEWAY_REPLICAS:
        replica = services[name]
        environment = replica["environment"]
        assert not replica.get("ports"), f"{name} publishes {replica['ports']}"
        assert environment["GATEWAY_TLS_TERMINATED_BY_PROXY"] == "true"
        assert "GATEWAY_TLS_CERT_FILE" not in environment
        settings = GatewaySettings(
            trusted_proxies=environment["GATEWAY_TRUSTED_PROXIES"].split(",")
        )
        assert settings.trusted_proxies == [edge["subnet"]]
        assert _joined(path, replica) == {"airlock-request-edge", "airlock-request-net"}
    proxy = services["proxy"]
    assert proxy["networks"] == ["edge"]
    assert [str(port).rsplit(":", 1)[-1] for port in proxy["ports"]] == ["8443"]
    published = [name for name, service in services.items() if service.get("ports")]
    assert published == ["proxy"]


def test_the_proxy_balances_between_the_replicas_on_their_users_port() -> None:
    """The Caddyfile's default rotation names every replica, on the port each serves."""
    (path,) = [p for p in COMPOSE_FILES if p.stem == "request-net"]
    services = load_compose(path)["services"]
    caddyfile = (path.parent / "caddy-request" / "Caddyfile").read_text()
    ports = {services[name]["environment"]["GATEWAY_PORT"] for name in GATEWAY_REPLICAS}
    (port,) = ports
    rotation = " ".join(f"{name}:{port}" for name in GATEWAY_REPLICAS)
    assert f"{{$GATEWAY_UPSTREAMS:{rotation}}}" in caddyfile
    assert "./caddy-request/Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]

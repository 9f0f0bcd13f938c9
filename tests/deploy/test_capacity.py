"""Capacity over the compose files: the connections every process of a network can hold at
once (each service's `database_connections`, from its settings as the file sets them) fit in
its PostgreSQL's max_connections, and each Redis has a memory cap and an eviction policy
chosen for what it holds (docs/deployment.md, "Database connections" and "Redis memory")."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Final

import pytest

from request_gateway import runtime as gateway_runtime
from request_gateway.settings import GatewaySettings
from response_processor import runtime as processor_runtime
from response_processor.settings import ProcessorSettings
from servicekit import migrations
from servicekit.settings import load_settings
from tests.deploy.deployfiles import COMPOSE_DIR, compose_services

# PostgreSQL's defaults (the compose files keep them): max_connections 100, of which
# superuser_reserved_connections 3 only a superuser may take.
MAX_CONNECTIONS: Final = 100
RESERVED: Final = 3
# Room for people: an operator's psql, a restore drill, a monitoring probe.
HEADROOM: Final = 10
NETWORKS: Final = {"request-net.yml": "GATEWAY_", "response-net.yml": "PROCESSOR_"}
REDIS_POLICY: Final = {"request-net.yml": "volatile-lru", "response-net.yml": "noeviction"}


def _setting(service: dict[str, Any], name: str) -> str | None:
    """A `-c name=value` of the server's command, if given."""
    command = service.get("command") or []
    for flag, value in itertools.pairwise(command):
        if flag == "-c" and value.startswith(f"{name}="):
            return str(value.split("=", 1)[1])
    return None


def connection_budget(path: Path) -> dict[str, int]:
    """Each Airlock process of a compose file and the most connections it holds."""
    prefix = NETWORKS[path.name]
    budget = {}
    for name, service in compose_services(path).items():
        command = service.get("command") or []
        if not command or command[0] not in ("serve", "worker", "backup"):
            continue
        environment = {
            key: str(value)
            for key, value in (service.get("environment") or {}).items()
            # Only the sizes matter here: no secret files, no production checks.
            if key.startswith(prefix) and not key.endswith(("_FILE", "_ENV"))
        }
        budget[name] = _connections(prefix, environment, command[0])
    return budget


def _connections(prefix: str, environment: dict[str, str], command: str) -> int:
    if prefix == "GATEWAY_":
        gateway = load_settings(GatewaySettings, prefix=prefix, environ=environment)
        return gateway_runtime.database_connections(gateway, command)
    processor = load_settings(ProcessorSettings, prefix=prefix, environ=environment)
    return processor_runtime.database_connections(processor, command)


@pytest.mark.parametrize("file_name", sorted(NETWORKS))
def test_every_process_fits_in_the_servers_connections(file_name: str) -> None:
    path = COMPOSE_DIR / file_name
    budget = connection_budget(path)
    assert {"worker", "backup"} <= {services.rsplit("-", 1)[-1] for services in budget}, budget
    postgres = compose_services(path)["postgres"]
    limit = int(_setting(postgres, "max_connections") or MAX_CONNECTIONS)
    reserved = int(_setting(postgres, "superuser_reserved_connections") or RESERVED)
    # One migration runs at a time (the advisory lock); the others wait on one connection each.
    starting = migrations.CONNECTIONS + len(budget)
    needed = sum(budget.values()) + starting + HEADROOM
    assert needed <= limit - reserved, (budget, needed, limit)


def test_the_gateways_servers_count_every_pool_and_listener() -> None:
    settings = GatewaySettings(workers=3, db_pool_size=7)
    # Three workers with a pool and two listeners each, and the operations port's pool.
    assert gateway_runtime.database_connections(settings, "serve") == 3 * (7 + 2) + 7
    assert gateway_runtime.database_connections(settings, "worker") == 7
    processor = ProcessorSettings(worker_concurrency=20)
    assert processor_runtime.database_connections(processor, "worker") == 24


@pytest.mark.parametrize("file_name", sorted(REDIS_POLICY))
def test_each_redis_has_a_memory_cap_and_its_eviction_policy(file_name: str) -> None:
    command = compose_services(COMPOSE_DIR / file_name)["redis"]["command"]
    options = dict(zip(command[2::2], command[3::2], strict=False))
    assert options["--maxmemory"].endswith("mb")
    assert options["--maxmemory-policy"] == REDIS_POLICY[file_name]

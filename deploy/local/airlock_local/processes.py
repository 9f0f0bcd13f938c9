"""What the demo runs: each process's command line and environment.

The services are configured only through their documented `GATEWAY_*` / `PROCESSOR_*`
variables (docs/request-gateway.md, docs/response-processor.md): the shared servers' URLs,
data folders and drop zones under `DEMO_DIR`, the provisioned keys and secrets, and short
link timings so that a request crosses the "air gap" and back within a few seconds.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from airlock_local.layout import DemoLayout, Generated, SideLayout
from airlock_local.seeding import ADMIN_USERNAME
from airlock_local.servers import ServerUrls
from airlock_local.settings import DemoSettings, Side

# Link timings for a snappy demo (defaults: 1 s, 2 s, 60 s; docs/link-protocol.md).
LINK_TIMINGS: Final = {"EXPORT_WINDOW_S": "0.5", "ACK_DELAY_S": "1", "SWEEP_INTERVAL_S": "5"}
COMMANDS: Final = ("request-gateway", "response-processor", "transfer-agent")
# Variables of ours that must not leak into the services' environment.
_OWN_PREFIXES: Final = ("DEMO_",)


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """One child process: its name in the output, its command and its environment."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    live_port: int | None = None  # where GET /health/live answers once it is up


@dataclass(frozen=True, slots=True)
class DemoProcesses:
    """The one-shot migrations, then the long-running processes, in start order."""

    migrations: tuple[ProcessSpec, ...]
    services: tuple[ProcessSpec, ...]


def demo_processes(layout: DemoLayout, settings: DemoSettings, urls: ServerUrls) -> DemoProcesses:
    """Every process of the demo with its configuration."""
    gateway_env = _gateway_env(layout, settings, urls)
    processor_env = _processor_env(layout, settings, urls)
    gateway, processor = console_script("request-gateway"), console_script("response-processor")
    agent_argv = (console_script("transfer-agent"), "run", "--config", str(layout.agent_config))
    return DemoProcesses(
        migrations=(
            ProcessSpec("processor-migrate", (processor, "migrate"), processor_env),
            ProcessSpec("gateway-migrate", (gateway, "migrate"), gateway_env),
        ),
        services=(
            ProcessSpec(
                "processor-api", (processor, "serve"), processor_env, settings.processor_port
            ),
            *_workers("processor", (processor, "worker"), processor_env, settings),
            ProcessSpec("gateway-api", (gateway, "serve"), gateway_env, settings.gateway_port),
            *_workers("gateway", (gateway, "worker"), gateway_env, settings),
            ProcessSpec("transfer-agent", agent_argv, _base_env(), settings.agent_port),
        ),
    )


def process_names(settings: DemoSettings) -> list[str]:
    """The name of every process the demo runs, in start order (for the console)."""
    workers = [
        worker_name(side, index)
        for side in ("processor", "gateway")
        for index in range(1, getattr(settings, f"{side}_workers") + 1)
    ]
    return [
        "processor-migrate",
        "gateway-migrate",
        "processor-api",
        "gateway-api",
        *workers,
        "transfer-agent",
    ]


def worker_name(side: Side, index: int) -> str:
    """A worker's name in the output: `gateway-worker`, then `gateway-worker-2`, …"""
    return f"{side}-worker" if index == 1 else f"{side}-worker-{index}"


def _workers(
    side: Side, argv: tuple[str, ...], env: Mapping[str, str], settings: DemoSettings
) -> list[ProcessSpec]:
    """One side's `worker` processes, each with its own /health port."""
    variable = f"{side.upper()}_WORKER_PORT"
    return [
        ProcessSpec(worker_name(side, index), argv, {**env, variable: str(port)}, port)
        for index, port in enumerate(settings.worker_ports(side), start=1)
    ]


def executables() -> list[str]:
    """The commands the demo runs (to recognise its own processes left by a killed run)."""
    return [console_script(name) for name in COMMANDS]


def console_script(name: str) -> str:
    """A workspace command: next to this interpreter (the uv environment), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed; run `make sync` first")
    return found


def _gateway_env(layout: DemoLayout, settings: DemoSettings, urls: ServerUrls) -> dict[str, str]:
    values = {
        "DATABASE_URL": urls.gateway_database,
        "REDIS_URL": urls.gateway_redis,
        "PORT": str(settings.gateway_port),
        "OPS_PORT": str(settings.gateway_ops_port),
        "WORKER_PORT": str(settings.gateway_worker_port),
        "JWT_SECRET_FILE": str(layout.secret(Generated.GATEWAY_JWT)),
    }
    return _with_overrides(_base_env(), _side_env("GATEWAY_", layout.gateway, values))


def _processor_env(layout: DemoLayout, settings: DemoSettings, urls: ServerUrls) -> dict[str, str]:
    values = {
        "DATABASE_URL": urls.processor_database,
        "REDIS_URL": urls.processor_redis,
        "PORT": str(settings.processor_port),
        "OPS_PORT": str(settings.processor_ops_port),
        "WORKER_PORT": str(settings.processor_worker_port),
        "JWT_SECRET_FILE": str(layout.secret(Generated.PROCESSOR_JWT)),
        "ADMIN_USERNAME": ADMIN_USERNAME,
        "ADMIN_PASSWORD_FILE": str(layout.secret(Generated.ADMIN_BOOTSTRAP)),
    }
    return _with_overrides(_base_env(), _side_env("PROCESSOR_", layout.processor, values))


def _side_env(prefix: str, side: SideLayout, values: Mapping[str, str]) -> dict[str, str]:
    common = {
        "HOST": "127.0.0.1",
        "DATA_DIR": str(side.data_dir),
        "OUTBOX_DIR": str(side.outbox),
        "INBOX_DIR": str(side.inbox),
        "SIGNING_KEY_FILE": str(side.signing_key),
        "PEER_KEYS_DIR": str(side.peer_keys),
        "LOG_FORMAT": "console",
        **LINK_TIMINGS,
    }
    return {f"{prefix}{key}": value for key, value in (common | dict(values)).items()}


def _with_overrides(env: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str]:
    """`env` with our settings, dropping a variable of the caller's that would clash.

    A service refuses `X` and `X_FILE` together, so setting one drops the other.
    """
    twins = {key.removesuffix("_FILE") if key.endswith("_FILE") else f"{key}_FILE" for key in ours}
    return {key: value for key, value in env.items() if key not in twins} | dict(ours)


def _base_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(_OWN_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the terminal as they are written
    return env

"""Where the deploy files are, and how the tests read them (YAML, systemd units, env files)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no types; only the tests read YAML

from servicekit.testing import need_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILES = sorted(COMPOSE_DIR.glob("*.yml"))
DOCKERFILES = {
    "request-gateway": DEPLOY / "docker" / "request-gateway.Dockerfile",
    "response-processor": DEPLOY / "docker" / "response-processor.Dockerfile",
    "transfer-agent": DEPLOY / "docker" / "transfer-agent.Dockerfile",
}
SYSTEMD_DIR = DEPLOY / "systemd"
PROMETHEUS_DIR = DEPLOY / "prometheus"
AGENT_DIR = DEPLOY / "transfer-agent"
INIT_SECRETS = COMPOSE_DIR / "init-secrets.sh"


def load_yaml(path: Path) -> Any:
    """A YAML document, anchors and merge keys resolved."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


_VARIABLE = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")


def load_compose(path: Path) -> Any:
    """A compose file as compose reads it with no variable set: `${X:-default}` is default."""

    def interpolate(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: interpolate(value) for key, value in node.items()}
        if isinstance(node, list):
            return [interpolate(item) for item in node]
        if isinstance(node, str):
            return _VARIABLE.sub(lambda match: match[1], node).replace("$$", "$")
        return node

    return interpolate(load_yaml(path))


def compose_services(path: Path) -> dict[str, dict[str, Any]]:
    """The `services` of a compose file."""
    services: dict[str, dict[str, Any]] = load_compose(path)["services"]
    return services


def all_compose_services() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(file, service name, service) for every service of every compose file."""
    for path in COMPOSE_FILES:
        for name, service in compose_services(path).items():
            yield path, name, service


def git_ignores(path: Path) -> bool:
    """Whether git ignores `path` in this repository."""
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", str(path)], cwd=REPO, check=False
    )
    return result.returncode == 0


@dataclass(frozen=True)
class EnvEntry:
    """One `NAME=value` line of a .env example; commented out or set."""

    name: str
    value: str
    commented: bool


_ENV_LINE = re.compile(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$")


def env_entries(path: Path) -> list[EnvEntry]:
    """The variables of an env file, `#NAME=value` lines included (comments are prose)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(line)
        if match:
            entries.append(EnvEntry(match[2], match[3], commented=bool(match[1])))
    return entries


def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as section -> [(key, value)], repeated keys kept in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(path: Path, section: str, key: str) -> list[str]:
    """Every value of `key` in `section` of a unit."""
    return [value for k, value in unit_entries(path).get(section, []) if k == key]


UNIT_VENV = "/opt/airlock/venv/bin/"
"""Where the units expect the virtual environment (rewritten to this one to verify them)."""


def systemd_verify(units: list[str], folder: Path) -> str:
    """`systemd-analyze verify` of these units from deploy/systemd, copied into `folder` with
    their programs pointed at this workspace (verify checks that each ExecStart= exists);
    everything it printed (an unknown key is only a warning: any message is a finding)."""
    analyze = need_tool("systemd-analyze", "systemd")
    scripts = str(Path(sys.executable).parent) + "/"
    for unit in units:
        (folder / unit).write_text((SYSTEMD_DIR / unit).read_text().replace(UNIT_VENV, scripts))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(units)],
        cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return f"exit {result.returncode}: {result.stdout}{result.stderr}".removesuffix(": ")

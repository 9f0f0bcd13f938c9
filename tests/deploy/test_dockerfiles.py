"""The Dockerfiles build each service from the lock file, run it as a non-root user, and ask
its health endpoint. Here the files are read; test_images.py looks inside the built images."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from tests.deploy.deployfiles import DOCKERFILES, REPO

PORTS = {
    "request-gateway": {8000, 8010},
    "response-processor": {8001, 8011},
    "transfer-agent": {8002},
}
PARAMS = sorted(DOCKERFILES.items())
IDS = [name for name, _ in PARAMS]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in _instructions(path):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def _base_images(path: Path) -> list[str]:
    defaults = dict(
        arguments.split("=", 1)
        for keyword, arguments in _instructions(path)
        if keyword == "ARG" and "=" in arguments
    )
    images = []
    for keyword, arguments in _instructions(path):
        if keyword == "FROM":
            image = arguments.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], image))
    return images


@pytest.mark.parametrize(("service", "path"), PARAMS, ids=IDS)
def test_base_images_are_production_images_pinned_by_tag(service: str, path: Path) -> None:
    for image in _base_images(path):
        name, _, tag = image.partition(":")
        assert name == "python", image
        assert re.fullmatch(r"3\.11[.\d]*-slim-bookworm", tag), f"pin {image} to a 3.11 slim tag"


@pytest.mark.parametrize(("service", "path"), PARAMS, ids=IDS)
def test_the_builder_syncs_only_this_service_from_the_lock_file(service: str, path: Path) -> None:
    builder, runtime = _stages(path)
    syncs = [
        shlex.split(arguments)
        for keyword, arguments in builder
        if keyword == "RUN" and "uv sync" in arguments
    ]
    assert syncs, "the builder runs uv sync"
    for command in syncs:
        tail = command[command.index("sync") :]
        assert {"--frozen", "--no-dev"} <= set(tail)
        assert tail[tail.index("--package") + 1] == service
    assert "--no-editable" in syncs[-1], "the runtime stage must not need the sources"
    copied = [arguments for keyword, arguments in runtime if keyword == "COPY"]
    assert copied == ["--from=builder /opt/airlock/venv /opt/airlock/venv"]


@pytest.mark.parametrize(("service", "path"), PARAMS, ids=IDS)
def test_every_workspace_member_is_copied_before_the_dependency_layer(
    service: str, path: Path
) -> None:
    # uv reads every member's pyproject.toml to resolve the workspace, even for one package.
    workspace = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    members = {
        member.parent.relative_to(REPO).as_posix()
        for pattern in workspace["members"]
        for member in REPO.glob(f"{pattern}/pyproject.toml")
    }
    copied = {
        source.removesuffix("/pyproject.toml")
        for keyword, arguments in _instructions(path)
        if keyword == "COPY"
        for source in arguments.split()[:1]
        if source.endswith("/pyproject.toml")
    }
    assert copied == members


@pytest.mark.parametrize(("service", "path"), PARAMS, ids=IDS)
def test_the_runtime_is_a_non_root_user_with_paths_health_check_and_entry_point(
    service: str, path: Path
) -> None:
    _, runtime = _stages(path)
    keywords = [keyword for keyword, _ in runtime]
    user = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert user, "a USER"
    assert user[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    environment = " ".join(arguments for keyword, arguments in runtime if keyword == "ENV")
    for variable in ("PATH=/opt/airlock/venv/bin", "PYTHONPATH=", "PYTHONDONTWRITEBYTECODE=1"):
        assert variable in environment
    exposed = {
        int(p) for keyword, arguments in runtime if keyword == "EXPOSE" for p in arguments.split()
    }
    assert exposed == PORTS[service]
    (health,) = [arguments for keyword, arguments in runtime if keyword == "HEALTHCHECK"]
    assert "python" in health
    assert "curl" not in health
    assert "/health/live" in environment + health
    (entry_point,) = [arguments for keyword, arguments in runtime if keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())[
        "project"
    ]["scripts"]
    assert entry_point == f'["{service}"]'
    assert service in scripts


def test_the_build_context_admits_only_the_workspace() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: everything is excluded first"
    admitted = {line[1:] for line in lines if line.startswith("!")}
    assert admitted == {"pyproject.toml", "uv.lock", "libs/", "services/"}

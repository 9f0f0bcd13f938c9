"""The agent configurations of deploy/transfer-agent/ load, and `transfer-agent check` accepts
each one on a copy of its folder layout (with the keys init-secrets.sh makes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchformat import generate_key_pair
from tests.deploy.deployfiles import AGENT_DIR
from transfer_agent.cli import main as agent_cli
from transfer_agent.config import load_config

CONFIGS = sorted(AGENT_DIR.glob("*.toml"))
IDS = [path.stem for path in CONFIGS]


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_the_configuration_loads(path: Path) -> None:
    config = load_config(path)
    assert {route.expect_destination for route in config.routes} == {"request-net", "response-net"}
    for route in config.routes:
        # Each route trusts only the key of the network its batches come from.
        (key,) = route.trusted_keys
        assert key.stem != route.expect_destination


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_transfer_agent_check_accepts_the_layout(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    text = path.read_text().replace('"/srv/airlock/', f'"{root}/srv/airlock/')
    text = text.replace('"/etc/airlock/', f'"{root}/etc/airlock/')
    copy = tmp_path / path.name
    copy.write_text(text)
    config = load_config(copy)
    for route in config.routes:
        route.source.mkdir(parents=True, exist_ok=True)
        route.destination.mkdir(parents=True, exist_ok=True)
        if route.destination_archive is not None:  # made by the image or tmpfiles.d
            route.destination_archive.mkdir(parents=True, exist_ok=True)
        for key in route.trusted_keys:
            if not key.exists():
                generate_key_pair(key.stem, tmp_path / "keys")
                key.parent.mkdir(parents=True, exist_ok=True)
                key.write_bytes((tmp_path / "keys" / key.name).read_bytes())
    assert agent_cli(["check", "--config", str(copy)]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.count("ok:") == len(config.routes)

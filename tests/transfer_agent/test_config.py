"""The configuration file: the shipped example parses, mistakes are caught with clear words."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.transfer_agent.conftest import Site
from transfer_agent.checks import route_problems
from transfer_agent.config import ConfigError, load_config

EXAMPLE = Path(__file__).parents[2] / "services" / "transfer-agent" / "agent.example.toml"

ROUTE = """
[[routes]]
name = "{name}"
source = "{source}"
destination = "in"
trusted_keys = ["k.pub"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_the_shipped_example_is_a_valid_configuration() -> None:
    config = load_config(EXAMPLE)
    assert [route.name for route in config.routes] == ["requests", "responses"]
    assert config.agent.host_port == ("127.0.0.1", 8002)
    assert config.routes[0].archive_path == Path("/srv/request-net/outbox/sent")


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ROUTE.format(name="a", source="out")))
    route = config.routes[0]
    assert route.source == tmp_path / "out"
    assert route.trusted_keys == [tmp_path / "k.pub"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agent]\nlisten = 'x'\n", "routes"),
        (ROUTE.format(name="a", source="out") + "colour = 'blue'\n", "colour"),
        (ROUTE.format(name="Bad Name", source="out"), "name"),
        (ROUTE.format(name="a", source="out") * 2, "used twice"),
        (ROUTE.format(name="a", source="out") + ROUTE.format(name="b", source="out"), "two routes"),
        (ROUTE.format(name="a", source="in"), "the same folder"),
        ("[agent]\nlisten = 'nowhere'\n" + ROUTE.format(name="a", source="out"), "HOST:PORT"),
        ("not toml at all = = =", "not valid TOML"),
    ],
)
def test_mistakes_are_reported(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_a_world_writable_drop_zone_is_a_problem(site: Site) -> None:
    route = load_config(site.write_config()).routes[0]
    assert route_problems(route) == []
    site.source.chmod(0o777)
    assert route_problems(route) == [
        f"route {route.name!r}: source {site.source} is writable by every local account "
        "(mode 777); use 2770, 0750 or 0700 (drop_zone_world_writable)"
    ]


def test_a_symlinked_quarantine_is_a_problem_at_start(site: Site) -> None:
    route = load_config(site.write_config()).routes[0]
    elsewhere = site.source.parent / "elsewhere"
    elsewhere.mkdir()
    (site.source / "quarantine").symlink_to(elsewhere)
    problems = route_problems(route)
    assert len(problems) == 1
    assert "unsafe_target_folder" in problems[0]
    assert "is a symlink" in problems[0]

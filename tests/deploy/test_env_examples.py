"""Each .env example names exactly the settings its service has, so they cannot drift apart,
and the defaults it shows are the real ones."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from request_gateway.settings import GatewaySettings
from response_processor.settings import ProcessorSettings
from servicekit.settings import load_settings
from tests.deploy.deployfiles import DEPLOY, EnvEntry, env_entries

ServiceSettings = type[GatewaySettings] | type[ProcessorSettings]
EXAMPLES: list[tuple[Path, ServiceSettings, str]] = [
    (DEPLOY / "env" / "request-gateway.env.example", GatewaySettings, "GATEWAY_"),
    (DEPLOY / "env" / "response-processor.env.example", ProcessorSettings, "PROCESSOR_"),
]
IDS = [path.name for path, _, _ in EXAMPLES]


def _fields(cls: ServiceSettings) -> set[str]:
    return {field.name for field in msgspec.structs.fields(cls)}


def _setting_of(entry: EnvEntry, cls: ServiceSettings, prefix: str) -> tuple[str, bool]:
    """The field an entry sets, and whether it reads it from a file (`X_FILE` for field x)."""
    name = entry.name.removeprefix(prefix).lower()
    if name not in _fields(cls) and name.endswith("_file"):
        return name.removesuffix("_file"), True
    return name, False


@pytest.mark.parametrize(("path", "cls", "prefix"), EXAMPLES, ids=IDS)
def test_the_example_names_every_setting_once_and_nothing_else(
    path: Path, cls: ServiceSettings, prefix: str
) -> None:
    entries = env_entries(path)
    assert all(entry.name.startswith(prefix) for entry in entries)
    named = [_setting_of(entry, cls, prefix)[0] for entry in entries]
    missing = sorted(_fields(cls) - set(named))
    unknown = sorted(set(named) - _fields(cls))
    twice = sorted({name for name in named if named.count(name) > 1})
    assert not missing, f"add to {path.name}: {', '.join(prefix + m.upper() for m in missing)}"
    assert not unknown, f"{path.name} names settings the code lacks: {unknown}"
    assert not twice, f"{path.name} names these more than once: {twice}"


@pytest.mark.parametrize(("path", "cls", "prefix"), EXAMPLES, ids=IDS)
def test_commented_out_values_are_the_defaults(
    path: Path, cls: ServiceSettings, prefix: str
) -> None:
    defaults = cls()
    for entry in env_entries(path):
        field, from_file = _setting_of(entry, cls, prefix)
        if not entry.commented or from_file:
            continue
        loaded = load_settings(cls, prefix=prefix, environ={entry.name: entry.value})
        assert getattr(loaded, field) == getattr(defaults, field), entry.name


@pytest.mark.parametrize(("path", "cls", "prefix"), EXAMPLES, ids=IDS)
def test_secrets_are_only_ever_read_from_files(
    path: Path, cls: ServiceSettings, prefix: str
) -> None:
    secret_fields = {"jwt_secret", "database_url", "redis_url"}
    for entry in env_entries(path):
        field, from_file = _setting_of(entry, cls, prefix)
        if field in secret_fields:
            assert from_file, f"{entry.name}: give secrets as {entry.name}_FILE"
            assert entry.commented, f"{entry.name}: the unit or compose file sets it"
            assert entry.value == ""

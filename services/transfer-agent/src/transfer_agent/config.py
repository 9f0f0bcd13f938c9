"""The agent's TOML configuration, decoded into typed structs at the edge."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from batchformat import DEFAULT_MAX_LINE_BYTES

RouteName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class AgentSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[agent]`: the process as a whole."""

    listen: str = "127.0.0.1:8002"
    rescan_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    force_polling: bool = False
    id: str = ""  # names this agent's in-flight folders; default: host name
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def host_port(self) -> tuple[str, int]:
        """`listen` split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def agent_id(self) -> str:
        """The configured id, or the host name."""
        return self.id or socket.gethostname()


class RouteConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[[routes]]`: one source drop zone delivered to one destination drop zone."""

    name: RouteName
    source: Path
    destination: Path
    trusted_keys: Annotated[list[Path], msgspec.Meta(min_length=1)]
    after_delivery: Literal["archive", "delete"] = "archive"
    archive_days: NonNegativeInt = 7
    archive_dir: Path | None = None  # default: SOURCE/sent
    min_free_bytes: NonNegativeInt = 256 * 1024 * 1024
    max_line_bytes: PositiveInt = DEFAULT_MAX_LINE_BYTES
    expect_destination: str | None = None  # reject batches addressed to another network
    destination_archive: Path | None = None  # where the receiver keeps batches it consumed

    @property
    def archive_path(self) -> Path:
        """Where delivered batches are kept when `after_delivery = "archive"`."""
        return self.archive_dir or self.source / "sent"

    @property
    def quarantine_path(self) -> Path:
        """Where rejected batches go, with their `.reason.json`."""
        return self.source / "quarantine"

    @property
    def in_flight_root(self) -> Path:
        """Parent of each agent instance's private claim folder (same file system as source)."""
        return self.source / ".in-flight"


class AgentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole configuration file."""

    routes: Annotated[list[RouteConfig], msgspec.Meta(min_length=1)]
    agent: AgentSection = AgentSection()


class ConfigError(Exception):
    """The configuration file is missing, malformed or inconsistent."""


def load_config(path: Path) -> AgentConfig:
    """Read and validate a configuration file; relative paths are relative to it."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        config = msgspec.convert(raw, AgentConfig, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config = _resolve_paths(config, path.parent.resolve())
    problems = consistency_problems(config)
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return config


def consistency_problems(config: AgentConfig) -> list[str]:
    """What is wrong across fields: duplicate names, shared or looping folders."""
    problems = []
    names = [route.name for route in config.routes]
    problems += [
        f"route name {name!r} is used twice" for name in set(names) if names.count(name) > 1
    ]
    sources = [route.source for route in config.routes]
    problems += [
        f"folder {source} is the source of two routes"
        for source in set(sources)
        if sources.count(source) > 1
    ]
    for route in config.routes:
        if route.source == route.destination:
            problems.append(f"route {route.name!r}: source and destination are the same folder")
    try:
        config.agent.host_port  # noqa: B018 - validates the value
    except ValueError:
        problems.append(f"agent.listen {config.agent.listen!r} is not HOST:PORT")
    return problems


def _decode_path(type_: type, value: object) -> object:
    if type_ is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def _resolve_paths(config: AgentConfig, base: Path) -> AgentConfig:
    def absolute(path: Path | None) -> Path | None:
        return None if path is None else (base / path.expanduser())

    routes = [
        msgspec.structs.replace(
            route,
            source=base / route.source.expanduser(),
            destination=base / route.destination.expanduser(),
            trusted_keys=[base / key.expanduser() for key in route.trusted_keys],
            archive_dir=absolute(route.archive_dir),
            destination_archive=absolute(route.destination_archive),
        )
        for route in config.routes
    ]
    return msgspec.structs.replace(config, routes=routes)

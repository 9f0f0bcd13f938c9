"""The demo's own settings, read from `DEMO_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec

from servicekit.settings import load_settings

PREFIX: Final = "DEMO_"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
WorkerCount = Annotated[int, msgspec.Meta(ge=1, le=8)]
Side = Literal["gateway", "processor"]


class DemoSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the demo keeps its state and which local ports it uses."""

    dir: Path = Path(".local")  # DEMO_DIR: keys, databases, users, logs; reused by a restart
    gateway_port: Port = 8000  # the users' API
    processor_port: Port = 8001  # the admin API
    gateway_ops_port: Port = 8020  # the gateway API's /health and /metrics
    processor_ops_port: Port = 8021  # the processor API's /health and /metrics
    agent_port: Port = 8002  # the transfer agent's /health and /metrics
    gateway_worker_port: Port = 8010  # the (first) gateway worker's /health and /metrics
    processor_worker_port: Port = 8011  # the (first) processor worker's /health and /metrics
    # How many `worker` processes each side runs; worker N listens on the first one's
    # port + N - 1.
    gateway_workers: WorkerCount = 1
    processor_workers: WorkerCount = 1

    def __post_init__(self) -> None:
        for side in ("gateway", "processor"):
            if self.worker_ports(side)[-1] > 65535:
                variable = f"{PREFIX}{side.upper()}_WORKERS"
                raise ValueError(f"{variable}: the last worker's port would be over 65535")

    def worker_ports(self, side: Side) -> list[int]:
        """The ports of one side's workers, in order."""
        first: int = getattr(self, f"{side}_worker_port")
        count: int = getattr(self, f"{side}_workers")
        return [first + index for index in range(count)]

    def ports(self) -> dict[str, int]:
        """Every port by the variable that sets it, to check they are free and distinct."""
        ports = {
            f"{PREFIX}{name.upper()}": getattr(self, name)
            for name in self.__struct_fields__
            if name.endswith("_port")
        }
        for side in ("gateway", "processor"):
            variable = f"{PREFIX}{side.upper()}_WORKER_PORT"
            for index, port in enumerate(self.worker_ports(side)[1:], start=1):
                ports[f"{variable} + {index} ({PREFIX}{side.upper()}_WORKERS)"] = port
        return ports


def load() -> DemoSettings:
    """Settings from the environment; SettingsError names every bad variable."""
    return load_settings(DemoSettings, prefix=PREFIX)

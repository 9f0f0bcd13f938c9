"""The demo's own settings, read from `DEMO_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import msgspec

from servicekit.settings import load_settings

PREFIX: Final = "DEMO_"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class DemoSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the demo keeps its state and which local ports it uses."""

    dir: Path = Path(".local")  # DEMO_DIR: keys, databases, users, logs; reused by a restart
    gateway_port: Port = 8000  # the users' API
    processor_port: Port = 8001  # the admin API
    agent_port: Port = 8002  # the transfer agent's /health and /metrics
    gateway_worker_port: Port = 8010  # the gateway worker's /health and /metrics
    processor_worker_port: Port = 8011  # the processor worker's /health and /metrics

    def ports(self) -> dict[str, int]:
        """Every port by the variable that sets it, to check they are free and distinct."""
        return {
            f"{PREFIX}{name.upper()}": getattr(self, name)
            for name in self.__struct_fields__
            if name.endswith("_port")
        }


def load() -> DemoSettings:
    """Settings from the environment; SettingsError names every bad variable."""
    return load_settings(DemoSettings, prefix=PREFIX)

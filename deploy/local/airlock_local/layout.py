"""Where everything lives under `DEMO_DIR`: the one place that names the demo's files.

```
DEMO_DIR/
  credentials.json        the admin's and the demo user's passwords (mode 600)
  try-it.sh               the curl session the banner prints (mode 700)
  postgres/               the one PostgreSQL server: databases gateway and processor
  gateway/                GATEWAY_DATA_DIR: redis/, outbox/, inbox/, keys/ (+ keys/peers/)
  processor/              PROCESSOR_DATA_DIR: the same for the response network
  agent/                  agent.toml and the public keys the agent's routes trust
  secrets/                generated passwords and JWT secrets (mode 600 each)
  logs/                   one file per process (and demo.log for the supervisor)
  run/                    the supervisor's lock and its children's pids
```
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from airlink.endpoint import LinkEndpointSettings
from airlink.settings import GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID


class Generated(StrEnum):
    """The generated secrets, by file name under `secrets/`."""

    ADMIN_BOOTSTRAP = "admin-bootstrap-password"  # the processor creates the admin with it
    ADMIN = "admin-password"  # the admin's password after the first-login change
    USER = "user-password"  # the demo user's
    GATEWAY_JWT = "gateway-jwt-secret"
    PROCESSOR_JWT = "processor-jwt-secret"


@dataclass(frozen=True, slots=True)
class SideLayout:
    """One network's service: its data folder, and the drop zones and keys under it.

    Those are wherever the service's link settings put them by default: this reads them from
    `airlink.endpoint.LinkEndpointSettings`, the settings both services are built on, so the
    demo cannot place a folder where the service would not look.
    """

    link: LinkEndpointSettings

    @classmethod
    def of(cls, network_id: str, peer_network_id: str, data_dir: Path) -> SideLayout:
        """The side of `network_id` (talking to `peer_network_id`) with its data in `data_dir`."""
        return cls(
            LinkEndpointSettings(
                data_dir=data_dir, network_id=network_id, peer_network_id=peer_network_id
            )
        )

    @property
    def network_id(self) -> str:
        """The network this side is on (its batches' `source`)."""
        return self.link.network_id

    @property
    def data_dir(self) -> Path:
        """The service's `*_DATA_DIR`."""
        return self.link.data_dir

    @property
    def outbox(self) -> Path:
        """Where this side publishes batches (a transfer-agent route's source)."""
        return self.link.outbox_path

    @property
    def inbox(self) -> Path:
        """Where the agent delivers the peer's batches."""
        return self.link.inbox_path

    @property
    def inbox_archive(self) -> Path:
        """Where the importer keeps the batches it has applied."""
        return self.link.link_settings().archive_dir

    @property
    def signing_key(self) -> Path:
        """This side's Ed25519 private key; its stem is the key id."""
        return self.link.signing_key_path

    @property
    def public_key(self) -> Path:
        """The public half, copied to the peer and to the agent."""
        return self.signing_key.with_suffix(".pub")

    @property
    def peer_keys(self) -> Path:
        """The peer's public keys this side trusts."""
        return self.link.peer_keys_path


@dataclass(frozen=True, slots=True)
class DemoLayout:
    """Every path of a demo installation, from its root folder."""

    root: Path

    @classmethod
    def at(cls, folder: Path) -> DemoLayout:
        """The layout under `folder`, made absolute (children run with other working folders)."""
        return cls(folder.expanduser().resolve())

    @property
    def gateway(self) -> SideLayout:
        """The request network's side."""
        return SideLayout.of(GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID, self.root / "gateway")

    @property
    def processor(self) -> SideLayout:
        """The response network's side."""
        return SideLayout.of(PROCESSOR_NETWORK_ID, GATEWAY_NETWORK_ID, self.root / "processor")

    @property
    def agent_dir(self) -> Path:
        """The transfer agent's configuration and trusted keys."""
        return self.root / "agent"

    @property
    def agent_config(self) -> Path:
        """The generated agent configuration."""
        return self.agent_dir / "agent.toml"

    @property
    def logs(self) -> Path:
        """One log file per process."""
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """The supervisor's lock file and pid files."""
        return self.root / "run"

    @property
    def credentials(self) -> Path:
        """`{"admin": {...}, "user": {...}}` with passwords that work as written."""
        return self.root / "credentials.json"

    @property
    def try_it(self) -> Path:
        """The printed curl session as a script."""
        return self.root / "try-it.sh"

    @property
    def secrets_dir(self) -> Path:
        """Generated passwords and JWT secrets, one file each."""
        return self.root / "secrets"

    def secret(self, name: Generated) -> Path:
        """A generated secret's file."""
        return self.secrets_dir / name

    def log_file(self, process: str) -> Path:
        """A process's log file."""
        return self.logs / f"{process}.log"

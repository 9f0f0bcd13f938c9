"""Every setting of the processor, read from `PROCESSOR_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec

from servicekit.settings import Environment, Secret, load_settings

PREFIX: Final = "PROCESSOR_"
# Refused in production by servicekit (a secret still at its development default).
DEV_JWT_SECRET: Final = "development-only-processor-jwt-secret-change-me"  # noqa: S105

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ProcessorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The processor's configuration; docs/configuration.md describes each field."""

    env: Environment = "development"
    data_dir: Path = Path(".local/processor")
    database_url: str | None = None  # unset: an embedded PostgreSQL under data_dir
    redis_url: str | None = None  # unset: an embedded Redis under data_dir
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8001
    worker_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8011  # a worker's /health, /metrics
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] | None = None  # default: json in production

    # Authentication
    jwt_secret: Secret = DEV_JWT_SECRET
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "airlock-response-processor"
    jwt_audience: str = "airlock-response-processor"
    access_token_minutes: PositiveInt = 30
    admin_username: str = "admin"
    admin_password_file: Path | None = None  # the bootstrap admin's password; else generated
    admin_allowed_networks: list[str] = msgspec.field(default_factory=list)  # empty: any
    cors_origins: list[str] = msgspec.field(default_factory=list)
    max_body_bytes: PositiveInt = 16 * 1024 * 1024  # bulk document loads are large

    # The link (docs/link-protocol.md)
    network_id: str = "response-net"
    peer_network_id: str = "request-net"
    outbox_dir: Path | None = None  # default: data_dir/outbox
    inbox_dir: Path | None = None  # default: data_dir/inbox
    signing_key_file: Path | None = None  # default: data_dir/keys/<network_id>.key
    peer_keys_dir: Path | None = None  # default: data_dir/keys/peers
    signing_enabled: bool = True
    export_window_s: PositiveFloat = 1.0
    max_batch_records: PositiveInt = 10_000
    ack_delay_s: PositiveFloat = 2.0
    heartbeat_interval_s: PositiveFloat = 30.0
    resend_after_s: PositiveFloat = 300.0
    sweep_interval_s: PositiveFloat = 60.0
    stale_after_s: PositiveFloat = 90.0
    snapshot_interval_s: PositiveFloat = 3600.0

    # Processing
    worker_concurrency: PositiveInt = 10
    job_timeout_s: PositiveFloat = 30.0
    job_timeouts: dict[str, float] = msgspec.field(default_factory=dict)  # by request type
    max_tries: PositiveInt = 5
    retry_backoff_s: PositiveFloat = 1.0  # doubled each try
    reconcile_interval_s: PositiveFloat = 60.0

    @property
    def outbox_path(self) -> Path:
        """Where this side publishes batches for the gateway."""
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def inbox_path(self) -> Path:
        """Where the transfer agent delivers the gateway's batches."""
        return self.inbox_dir or self.data_dir / "inbox"

    @property
    def signing_key_path(self) -> Path:
        """This side's Ed25519 private key."""
        return self.signing_key_file or self.data_dir / "keys" / f"{self.network_id}.key"

    @property
    def peer_keys_path(self) -> Path:
        """The gateway's public keys."""
        return self.peer_keys_dir or self.data_dir / "keys" / "peers"

    @property
    def json_logs(self) -> bool:
        """JSON log lines unless console output was asked for (the default in development)."""
        return (self.log_format or ("json" if self.env == "production" else "console")) == "json"

    def production_problems(self) -> list[str]:
        """What production refuses beyond default secrets."""
        problems = []
        if not self.signing_enabled:
            problems.append(f"{PREFIX}SIGNING_ENABLED: batches must be signed in production")
        if self.database_url is None:
            problems.append(f"{PREFIX}DATABASE_URL: production needs a real PostgreSQL server")
        if self.redis_url is None:
            problems.append(f"{PREFIX}REDIS_URL: production needs a real Redis server")
        if self.signing_key_file is None:
            problems.append(f"{PREFIX}SIGNING_KEY_FILE: production keys are provisioned, not made")
        if len(self.jwt_secret) < 32:
            problems.append(f"{PREFIX}JWT_SECRET: use at least 32 characters")
        return problems


def load() -> ProcessorSettings:
    """Settings from the environment; SettingsError lists every problem."""
    return load_settings(ProcessorSettings, prefix=PREFIX)

"""Every setting of the processor, read from `PROCESSOR_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec

from airlink.endpoint import LinkEndpointSettings
from airlink.settings import GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID
from batchformat.models import NetworkId
from servicekit.exposure import parse_proxies
from servicekit.settings import (
    Environment,
    Secret,
    json_logs,
    load_settings,
    service_production_problems,
)

PREFIX: Final = "PROCESSOR_"
# Refused in production by servicekit (a secret still at its development default).
DEV_JWT_SECRET: Final = "development-only-processor-jwt-secret-change-me"  # noqa: S105

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ProcessorSettings(LinkEndpointSettings, frozen=True, kw_only=True):
    """The processor's configuration; docs/configuration.md describes each field."""

    env: Environment = "development"
    data_dir: Path = Path(".local/processor")
    database_url: str | None = None  # unset: an embedded PostgreSQL under data_dir
    redis_url: str | None = None  # unset: an embedded Redis under data_dir
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8001
    worker_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8011  # a worker's /health, /metrics
    ops_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8021  # `serve`'s /health, /metrics
    ops_host: str | None = None  # the operations port's address; default: host
    tls_cert_file: Path | None = None  # with tls_key_file: serve HTTPS directly
    tls_key_file: Path | None = None
    tls_terminated_by_proxy: bool = False  # production without the files: a proxy does TLS
    # Addresses or CIDR ranges whose X-Forwarded-For names the client; none by default.
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
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
    body_timeout_s: PositiveFloat = 30.0  # a body not complete by then: 408, connection closed
    idle_timeout_s: PositiveInt = 30  # a connection without a request (headers) this long: closed
    max_connections: PositiveInt = 256  # requests in progress per worker; more wait or get 503

    # The link: LinkEndpointSettings declares the rest (docs/link-protocol.md)
    network_id: NetworkId = PROCESSOR_NETWORK_ID
    peer_network_id: NetworkId = GATEWAY_NETWORK_ID
    snapshot_interval_s: PositiveFloat = 3600.0

    # Processing
    worker_concurrency: PositiveInt = 10
    job_timeout_s: PositiveFloat = 30.0
    job_timeouts: dict[str, float] = msgspec.field(default_factory=dict)  # by request type
    max_tries: PositiveInt = 5
    retry_backoff_s: PositiveFloat = 1.0  # doubled each try
    reconcile_interval_s: PositiveFloat = 60.0
    retention_days: PositiveInt = 30  # finished requests, acknowledged batches, archived files
    retention_interval_s: PositiveFloat = 3600.0

    def __post_init__(self) -> None:
        try:
            parse_proxies(self.trusted_proxies)
        except ValueError as exc:
            raise ValueError(f"{PREFIX}TRUSTED_PROXIES: {exc}") from None
        if self.ops_port == self.port and (self.ops_host or self.host) == self.host:
            raise ValueError(f"{PREFIX}OPS_PORT: must differ from {PREFIX}PORT")

    @property
    def json_logs(self) -> bool:
        """JSON log lines unless console output was asked for (the default in development)."""
        return json_logs(self)

    def production_problems(self) -> list[str]:
        """What production refuses beyond default secrets."""
        return self.link_production_problems(PREFIX) + service_production_problems(self, PREFIX)


def load() -> ProcessorSettings:
    """Settings from the environment; SettingsError lists every problem."""
    return load_settings(ProcessorSettings, prefix=PREFIX)

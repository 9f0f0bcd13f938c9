"""Every setting of the gateway, read from `GATEWAY_*` environment variables."""

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

PREFIX: Final = "GATEWAY_"
# Refused in production by servicekit (a secret still at its development default).
DEV_JWT_SECRET: Final = "development-only-gateway-jwt-secret-change-me"  # noqa: S105

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class GatewaySettings(LinkEndpointSettings, frozen=True, kw_only=True):
    """The gateway's configuration; docs/request-gateway.md describes each field."""

    env: Environment = "development"
    data_dir: Path = Path(".local/gateway")
    database_url: str | None = None  # unset: an embedded PostgreSQL under data_dir
    redis_url: str | None = None  # unset: an embedded Redis under data_dir
    host: str = "127.0.0.1"
    port: Port = 8000
    workers: PositiveInt = 1  # server processes of `serve`
    worker_port: Port = 8010  # the link worker's /health and /metrics
    ops_port: Port = 8020  # `serve`'s /health and /metrics (the operations port)
    ops_host: str | None = None  # the operations port's address; default: host
    db_pool_size: PositiveInt = 10  # per process
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] | None = None  # default: json in production
    tls_cert_file: Path | None = None  # with tls_key_file: serve HTTPS directly
    tls_key_file: Path | None = None
    tls_terminated_by_proxy: bool = False  # production without the files: a proxy does TLS
    # Addresses or CIDR ranges whose X-Forwarded-For names the client; none by default.
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    cors_origins: list[str] = msgspec.field(default_factory=list)
    max_body_bytes: PositiveInt = 1024 * 1024
    body_timeout_s: PositiveFloat = 30.0  # a body not complete by then: 408, connection closed
    idle_timeout_s: PositiveInt = 30  # a connection without a request (headers) this long: closed
    max_connections: PositiveInt = 256  # requests in progress per worker; more wait or get 503

    # Authentication
    jwt_secret: Secret = DEV_JWT_SECRET
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "airlock-request-gateway"
    jwt_audience: str = "airlock-request-gateway"
    access_token_minutes: PositiveInt = 30
    refresh_token_days: PositiveInt = 14  # one refresh token's life
    session_days: PositiveInt = 30  # a login's absolute life, however often refreshed
    api_key_days: PositiveInt = 90  # default and maximum life of an API key
    max_api_keys: PositiveInt = 10  # live keys per user
    identity_cache_s: PositiveFloat = 30.0  # users, profiles and API keys, between syncs

    # Requests and limits
    request_ttl_hours: PositiveFloat = 24.0  # unanswered longer: expired
    expiry_interval_s: PositiveFloat = 60.0
    rate_limit_on_redis_error: Literal["open", "closed"] = "open"
    # Longer without an answer from Redis: a Redis error. Generous, because a busy event loop
    # (not Redis) is what makes a check late; a late check must not let a submit through.
    rate_limit_timeout_s: PositiveFloat = 1.0
    retention_days: PositiveInt = 30  # finished requests, acknowledged batches, archived files
    retention_interval_s: PositiveFloat = 3600.0
    # Long polls (`GET /requests/{id}?wait=`) and event streams (`GET /requests/events`)
    # open at once: per user, and per server process (keep it below max_connections, which
    # they count against while they wait).
    max_open_waits_per_user: PositiveInt = 8
    max_open_waits: PositiveInt = 128
    event_stream_max_s: PositiveFloat = 3600.0  # then the client reconnects (auth re-checked)
    event_keepalive_s: PositiveFloat = 15.0  # a comment line when nothing else was sent

    # The link: LinkEndpointSettings declares the rest (docs/link-protocol.md)
    network_id: NetworkId = GATEWAY_NETWORK_ID
    peer_network_id: NetworkId = PROCESSOR_NETWORK_ID

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


def load() -> GatewaySettings:
    """Settings from the environment; SettingsError lists every problem."""
    return load_settings(GatewaySettings, prefix=PREFIX)

"""What `/health` checks, for the API and the link worker alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from request_gateway.runtime import Runtime
from servicekit.health import HealthCheck, folder_check, postgres_check, redis_check

MIN_FREE_BYTES: Final = 100 * 1024 * 1024


def health_checks(runtime: Runtime) -> Sequence[HealthCheck]:
    """The database and the drop zones are critical. Redis is not: without it submits are
    refused or let through unlimited (`GATEWAY_RATE_LIMIT_ON_REDIS_ERROR`) and logins are
    not limited, so the gateway reports itself degraded. The link's freshness is not either."""
    settings = runtime.settings
    return [
        postgres_check(runtime.pool),
        redis_check(runtime.redis, critical=False),
        folder_check(settings.outbox_path, min_free_bytes=MIN_FREE_BYTES, name="outbox"),
        folder_check(settings.inbox_path, min_free_bytes=MIN_FREE_BYTES, name="inbox"),
        runtime.link.health_check(),
    ]

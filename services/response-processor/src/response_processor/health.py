"""What `/health` checks, for the API and the worker alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from response_processor.runtime import Runtime
from servicekit.health import HealthCheck, folder_check, postgres_check, redis_check

MIN_FREE_BYTES: Final = 100 * 1024 * 1024


def health_checks(runtime: Runtime) -> Sequence[HealthCheck]:
    """Database, Redis and the drop zones are critical; the link's freshness is not."""
    settings = runtime.settings
    return [
        postgres_check(runtime.pool),
        redis_check(runtime.redis),
        folder_check(settings.outbox_path, min_free_bytes=MIN_FREE_BYTES, name="outbox"),
        folder_check(settings.inbox_path, min_free_bytes=MIN_FREE_BYTES, name="inbox"),
        runtime.link.health_check(),
    ]

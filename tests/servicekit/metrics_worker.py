"""What a worker process does in the multiprocess metrics tests.

Kept apart from the test module so a spawned interpreter imports only prometheus-client and
servicekit.metrics, not pytest.
"""

from __future__ import annotations

from prometheus_client import Counter

from servicekit.metrics import declare_gauge


def count_jobs(increments: int) -> None:
    """Count ``increments`` jobs and report two in flight, as one worker would."""
    jobs = Counter("sk_test_jobs", "Jobs done", ["kind"])
    in_flight = declare_gauge("sk_test_in_flight", "Jobs in flight", multiprocess_mode="livesum")
    for _ in range(increments):
        jobs.labels(kind="echo").inc()
    in_flight.set(2)


def declare_health_gauges() -> None:
    """Import servicekit.health, as a server's worker does, without running any check."""
    import servicekit.health  # noqa: F401

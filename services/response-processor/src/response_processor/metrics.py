"""Every metric of request processing, in one place."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from servicekit.metrics import declare_gauge

JOBS = Counter(
    "processor_jobs_total",
    "Job runs by outcome: completed, failed, dead_lettered, rejected, cancelled, "
    "already_final, unknown (a retry raised before an outcome is not counted here).",
    ("outcome",),
)
JOB_SECONDS = Histogram(
    "processor_job_duration_seconds",
    "Time of one job run, by outcome.",
    ("outcome",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RETRIES = Counter("processor_job_retries_total", "Tries that failed and will be tried again.")
DEAD_LETTERS = Counter("processor_dead_letters_total", "Requests that failed their last try.")
QUEUE_DEPTH = declare_gauge(
    "processor_queue_depth",
    "Jobs waiting in the arq queue.",
    multiprocess_mode="mostrecent",
)
UNFINISHED = declare_gauge(
    "processor_unfinished_requests",
    "Requests received and not yet answered.",
    multiprocess_mode="mostrecent",
)
OLDEST_UNFINISHED = declare_gauge(
    "processor_oldest_unfinished_request_age_seconds",
    "Age of the oldest request received and not yet answered (0 when none).",
    multiprocess_mode="mostrecent",
)
RECONCILED = Counter(
    "processor_requests_reenqueued_total",
    "Unfinished requests put back in the queue by reconciliation (after a restart or Redis loss).",
)

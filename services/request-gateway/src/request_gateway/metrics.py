"""Every metric of the gateway's own, in one place (the link's are in `airlink.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

from servicekit.metrics import declare_gauge

IDENTITY_LOOKUPS = Counter(
    "gateway_identity_cache_lookups",
    "Lookups of users, profile types and API keys on the request path, by cache and result.",
    ["cache", "result"],
)
RESPONSES = Counter(
    "gateway_responses_imported",
    "Responses imported, by whether they settled a request or were ignored (unknown, "
    "already final, or older than the stored outcome).",
    ["outcome"],
)
# Set by the worker alone, after each expiry pass (alert: requests left unanswered).
OLDEST_PENDING_AGE = declare_gauge(
    "gateway_oldest_pending_request_age_seconds",
    "Age of the oldest request still queued, exported or delivered (0 when none).",
    multiprocess_mode="mostrecent",
)

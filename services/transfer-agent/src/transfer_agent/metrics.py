"""Every metric the transfer agent exports, in one place."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

from servicekit.metrics import declare_gauge

ROUTE: Final = ("route",)

BATCHES_DELIVERED = Counter(
    "transfer_batches_delivered_total", "Batches made visible at a destination.", ROUTE
)
BYTES_DELIVERED = Counter(
    "transfer_bytes_delivered_total", "Bytes of batches made visible at a destination.", ROUTE
)
ALREADY_DELIVERED = Counter(
    "transfer_batches_already_delivered_total",
    "Claimed batches found already delivered (same name and bytes) and not copied again.",
    ROUTE,
)
REJECTS = Counter(
    "transfer_batches_rejected_total",
    "Batches quarantined, by rejection reason.",
    ("route", "reason"),
)
IGNORED_ENTRIES = Counter(
    "transfer_ignored_entries_total",
    "Entries of a source folder that are not batches (counted once per name), by kind.",
    ("route", "kind"),
)
IN_FLIGHT = declare_gauge(
    "transfer_batches_in_flight",
    "Batches claimed by this agent and not yet delivered.",
    multiprocess_mode="livesum",
    labelnames=ROUTE,
)
COPY_SECONDS = Histogram(
    "transfer_copy_duration_seconds",
    "Time to copy, verify, fsync and publish one batch.",
    ROUTE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DELIVERY_DELAY = Histogram(
    "transfer_delivery_delay_seconds",
    "From a batch's publication in the source folder to its delivery.",
    ROUTE,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
DESTINATION_FREE_BYTES = declare_gauge(
    "transfer_destination_free_bytes",
    "Free bytes in the destination folder's file system.",
    multiprocess_mode="mostrecent",
    labelnames=ROUTE,
)
LAST_DELIVERY = declare_gauge(
    "transfer_last_delivery_timestamp_seconds",
    "Unix time of the route's last successful delivery.",
    multiprocess_mode="mostrecent",
    labelnames=ROUTE,
)
PAUSED = declare_gauge(
    "transfer_route_paused",
    "1 while the route waits for free space at its destination.",
    multiprocess_mode="mostrecent",
    labelnames=ROUTE,
)

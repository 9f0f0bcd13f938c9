"""airlink: the link protocol both services share (docs/link-protocol.md).

A service implements one `LinkService` (what it stages, applies, does when acknowledged and
once an import committed), builds one `Link` from it (pool, `LinkSettings`, keys), runs
`Link.run(stop)`, and calls `enqueue(conn, records)` in the transactions whose changes its
peer must hear about.
"""

from airlink.export import ExportReport
from airlink.health import link_health_check
from airlink.inbox import ImportReport
from airlink.outbox import enqueue, sent_records
from airlink.runner import Link
from airlink.service import LinkService
from airlink.settings import GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID, LinkSettings
from airlink.state import LinkState, read_link_state

__all__ = [
    "GATEWAY_NETWORK_ID",
    "PROCESSOR_NETWORK_ID",
    "ExportReport",
    "ImportReport",
    "Link",
    "LinkService",
    "LinkSettings",
    "LinkState",
    "enqueue",
    "link_health_check",
    "read_link_state",
    "sent_records",
]

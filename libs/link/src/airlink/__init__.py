"""airlink: the link protocol both services share (docs/link-protocol.md).

A service builds one `Link` (pool, `LinkSettings`, keys, its inbound record union and an
`InboundHandler`), runs `Link.run(stop)`, and calls `enqueue(conn, records)` in the
transactions whose changes its peer must hear about.
"""

from airlink.export import ExportedBatch, Exporter, ExportReport
from airlink.health import LinkStale, link_health_check
from airlink.inbox import ImportedBatch, Importer, ImportReport, InboundHandler
from airlink.outbox import batch_records, enqueue
from airlink.runner import Link
from airlink.settings import GATEWAY_NETWORK_ID, PROCESSOR_NETWORK_ID, LinkSettings
from airlink.state import LinkState, read_link_state

__all__ = [
    "GATEWAY_NETWORK_ID",
    "PROCESSOR_NETWORK_ID",
    "ExportReport",
    "ExportedBatch",
    "Exporter",
    "ImportReport",
    "ImportedBatch",
    "Importer",
    "InboundHandler",
    "Link",
    "LinkSettings",
    "LinkStale",
    "LinkState",
    "batch_records",
    "enqueue",
    "link_health_check",
    "read_link_state",
]

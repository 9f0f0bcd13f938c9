"""The link's settings, with the defaults of docs/link-protocol.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import msgspec

from batchformat.models import NetworkId

GATEWAY_NETWORK_ID: Final = "request-net"
PROCESSOR_NETWORK_ID: Final = "response-net"

Seconds = Annotated[float, msgspec.Meta(gt=0)]


class LinkTimings(msgspec.Struct, frozen=True, kw_only=True):
    """When the link sends, acknowledges, resends and sweeps, and how big batches grow."""

    export_window_s: Seconds = 1.0
    max_batch_records: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    ack_delay_s: Seconds = 2.0
    heartbeat_interval_s: Seconds = 30.0
    resend_after_s: Seconds = 300.0
    sweep_interval_s: Seconds = 60.0
    stale_after_s: Seconds = 90.0


class LinkSettings(LinkTimings, frozen=True, kw_only=True):
    """One side's view of the link: who it is, who its peer is, its folders and timings."""

    network_id: NetworkId
    peer_network_id: NetworkId
    outbox_dir: Path
    inbox_dir: Path
    # How far a new batch's seq may lie beyond the highest seen: a valid, signed batch with
    # an absurd seq would otherwise open a gap that never closes (docs/link-protocol.md).
    max_seq_jump: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000

    def __post_init__(self) -> None:
        if self.network_id == self.peer_network_id:
            raise ValueError("network_id and peer_network_id must differ")
        # Acks of heartbeats ride on the peer's next heartbeat: resending sooner than that
        # would resend every batch of an idle link once per interval.
        if self.resend_after_s <= self.heartbeat_interval_s:
            raise ValueError("resend_after_s must be longer than heartbeat_interval_s")

    @property
    def importing_dir(self) -> Path:
        """Where importers claim batches, one locked folder per process."""
        return self.inbox_dir / ".importing"

    @property
    def archive_dir(self) -> Path:
        """Where applied (and duplicate) batches go."""
        return self.inbox_dir / "archive"

    @property
    def quarantine_dir(self) -> Path:
        """Where rejected batches go, each with its `.reason.json`."""
        return self.inbox_dir / "quarantine"

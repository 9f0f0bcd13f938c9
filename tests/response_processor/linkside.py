"""The gateway's side of the link, played by the tests: what the processor sent, and cancels.

`FakeGateway` and `request` (signed batches into the inbox) live in `response_processor.testing`,
shared with the benchmarks; they are re-exported here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from airlink.records import Cancel, Request, ToGateway
from batchformat import (
    BatchReader,
    TrustedKeys,
)
from response_processor.runtime import open_runtime
from response_processor.settings import ProcessorSettings
from response_processor.testing import FakeGateway, request

__all__ = ["FakeGateway", "cancel", "exported_records", "request", "sent_records"]


def cancel(of: Request) -> Cancel:
    """The cancel of a request."""
    return Cancel(request_id=of.id, user_id=of.user_id, requested_at=datetime.now(UTC))


def sent_records(settings: ProcessorSettings) -> list[Any]:
    """Every record of every batch in the outbox, read (and verified) as the gateway would."""
    trusted = TrustedKeys.from_files([settings.signing_key_path.with_suffix(".pub")])
    return [
        record
        for path in sorted(settings.outbox_path.glob("*.jsonl"))
        for record in BatchReader(path, trusted, ToGateway).records()
    ]


async def exported_records(settings: ProcessorSettings, kind: str) -> list[dict[str, Any]]:
    """Export what is queued, then the sent records of one kind, as plain data."""
    async with open_runtime(settings) as runtime:
        await runtime.link.export_once()
    return [
        msgspec.to_builtins(record)
        for record in sent_records(settings)
        if type(record).__struct_config__.tag == kind
    ]

"""The gateway's side of the link, played by the tests: signed batches into the inbox."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from airlink.records import Cancel, Request, ToGateway
from batchformat import (
    BatchReader,
    Header,
    SigningKey,
    TrustedKeys,
    generate_key_pair,
    load_signing_key,
    write_batch,
)
from response_processor.runtime import open_runtime
from response_processor.settings import ProcessorSettings


class FakeGateway:
    """Signs batches as `request-net` would and drops them into the processor's inbox."""

    def __init__(self, settings: ProcessorSettings) -> None:
        keys = settings.data_dir / "gateway-keys"
        private, public = generate_key_pair("request-net-test", keys)
        settings.peer_keys_path.mkdir(parents=True, exist_ok=True)
        (settings.peer_keys_path / public.name).write_bytes(public.read_bytes())
        self.key: SigningKey = load_signing_key(private)
        self.inbox = settings.inbox_path
        self._seq = itertools.count(1)

    def send(self, records: Sequence[Any], *, seq: int | None = None) -> Path:
        """Publish one batch of records into the inbox; return its path."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        header = Header(
            batch_id=uuid.uuid4(),
            source="request-net",
            destination="response-net",
            seq=next(self._seq) if seq is None else seq,
            created_at=datetime.now(UTC),
        )
        return write_batch(self.inbox, header, records, self.key).path


def request(user_id: uuid.UUID, type_: str = "echo", **payload: Any) -> Request:
    """A request record as the gateway exports it."""
    return Request(
        id=uuid.uuid4(),
        user_id=user_id,
        type=type_,
        payload=payload or {"hello": "world"},
        created_at=datetime.now(UTC),
        trace_id=uuid.uuid4().hex,
    )


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

"""The gateway's side of the link, played for tests and benchmarks: signed batches into the inbox.

Nothing in the service imports this module; `tests/` and `bench/` both do (`bench/` may not
import `tests/`: tests/bench/test_layering.py).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airlink.records import Request
from batchformat import Header, SigningKey, generate_key_pair, load_signing_key, write_batch
from response_processor.settings import ProcessorSettings

__all__ = ["FakeGateway", "request"]


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

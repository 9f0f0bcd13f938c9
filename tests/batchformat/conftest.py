"""Keys and batches for the batchformat tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from batchformat import Header, SigningKey, TrustedKeys, write_batch
from batchformat.keys import generate_key_pair, load_signing_key


class Echo(msgspec.Struct, tag_field="kind", tag="echo", frozen=True):
    """A record kind of the tests' own union."""

    request_id: uuid.UUID
    payload: dict[str, Any]


class Ack(msgspec.Struct, tag_field="kind", tag="ack", frozen=True):
    """Another record kind."""

    batch_id: uuid.UUID


TestRecord = Echo | Ack

MakeBatch = Callable[..., Path]


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    generate_key_pair("request-net-1", directory)
    generate_key_pair("intruder", directory)
    return directory


@pytest.fixture(scope="session")
def signing_key(key_dir: Path) -> SigningKey:
    return load_signing_key(key_dir / "request-net-1.key")


@pytest.fixture(scope="session")
def intruder_key(key_dir: Path) -> SigningKey:
    return load_signing_key(key_dir / "intruder.key")


@pytest.fixture(scope="session")
def trusted(key_dir: Path) -> TrustedKeys:
    return TrustedKeys.from_files([key_dir / "request-net-1.pub"])


def make_header(seq: int = 1, source: str = "request-net", **overrides: Any) -> Header:
    fields: dict[str, Any] = {
        "batch_id": uuid.uuid4(),
        "source": source,
        "destination": "response-net",
        "seq": seq,
        "created_at": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return Header(**fields)


def echo_records(count: int) -> list[Echo]:
    return [Echo(uuid.UUID(int=i), {"n": i, "text": "é" * (i % 5)}) for i in range(count)]


@pytest.fixture
def make_batch(tmp_path: Path, signing_key: SigningKey) -> MakeBatch:
    """Write a signed batch into tmp_path (or `directory`) and return its path."""

    def make(
        records: Iterable[Any] = (),
        *,
        seq: int = 1,
        key: SigningKey | None = None,
        directory: Path | None = None,
        **header: Any,
    ) -> Path:
        folder = directory or tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        published = write_batch(folder, make_header(seq, **header), records, key or signing_key)
        return published.path

    return make

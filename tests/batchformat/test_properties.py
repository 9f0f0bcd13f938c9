"""Property tests: no single-byte change and no truncation of a valid batch gets through."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchformat import BatchParser, BatchRejected, SigningKey, TrustedKeys, write_batch
from batchformat.digest import StreamingSha256
from batchformat.lines import count_newlines
from tests.batchformat.conftest import Ack, Echo, TestRecord, make_header

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
payloads = st.dictionaries(
    st.text(max_size=8),
    st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
    max_size=4,
)
records = st.lists(
    st.one_of(
        st.builds(Echo, st.uuids(), payloads),
        st.builds(Ack, st.uuids()),
    ),
    max_size=8,
)

# Hypothesis re-runs examples many times; a function-scoped folder is fine for that.
_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def batch_bytes(folder: Path, items: list[Any], key: SigningKey) -> bytes:
    folder.mkdir(exist_ok=True)
    path = write_batch(folder, make_header(batch_id=uuid.uuid4()), items, key).path
    data = path.read_bytes()
    path.unlink()
    return data


def parse(data: bytes, trusted: TrustedKeys, piece: int = 1 << 20) -> list[Any]:
    parser = BatchParser(trusted, TestRecord)
    out: list[Any] = []
    for start in range(0, len(data), piece):
        out += parser.feed(data[start : start + piece])
    parser.finish()
    return out


@_settings
@given(items=records, piece=st.integers(min_value=1, max_value=512))
def test_records_decode_back_equal(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, items: list[Any], piece: int
) -> None:
    assert parse(batch_bytes(tmp_path / "b", items, signing_key), trusted, piece) == items


@_settings
@given(items=records, data=st.data())
def test_any_single_byte_change_is_rejected(
    tmp_path: Path,
    signing_key: SigningKey,
    trusted: TrustedKeys,
    items: list[Any],
    data: st.DataObject,
) -> None:
    original = batch_bytes(tmp_path / "b", items, signing_key)
    position = data.draw(st.integers(min_value=0, max_value=len(original) - 1), label="position")
    value = data.draw(
        st.integers(min_value=0, max_value=255).filter(lambda b: b != original[position]),
        label="value",
    )
    corrupted = bytearray(original)
    corrupted[position] = value
    with pytest.raises(BatchRejected):
        parse(bytes(corrupted), trusted)


@_settings
@given(items=records, data=st.data())
def test_any_truncation_is_rejected(
    tmp_path: Path,
    signing_key: SigningKey,
    trusted: TrustedKeys,
    items: list[Any],
    data: st.DataObject,
) -> None:
    original = batch_bytes(tmp_path / "b", items, signing_key)
    length = data.draw(st.integers(min_value=0, max_value=len(original) - 1), label="length")
    with pytest.raises(BatchRejected):
        parse(original[:length], trusted)


def test_every_change_to_any_byte_of_the_trailer_is_rejected(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    # The trailer is the one line the digest does not cover, so it is checked exhaustively.
    original = batch_bytes(tmp_path / "b", [Ack(uuid.UUID(int=1))], signing_key)
    trailer_start = original.rindex(b"\n", 0, len(original) - 1) + 1
    accepted = []
    for position in range(trailer_start, len(original)):
        corrupted = bytearray(original)
        for value in range(256):
            if value == original[position]:
                continue
            corrupted[position] = value
            try:
                parse(bytes(corrupted), trusted)
            except BatchRejected:
                continue
            accepted.append((position, value))
    assert accepted == []


@given(
    line_lengths=st.lists(st.integers(min_value=1, max_value=600), max_size=2000),
    cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
@settings(max_examples=200, deadline=None)
def test_count_newlines_counts_as_bytes_count_does(
    line_lengths: list[int], cut: tuple[float, float]
) -> None:
    data = b"".join(b"x" * (length - 1) + b"\n" for length in line_lengths) + b"tail"
    start, end = sorted(int(fraction * len(data)) for fraction in cut)
    for region in ((0, len(data)), (start, end), (start, len(data)), (1, len(data) - 1)):
        assert count_newlines(data, *region) == data.count(b"\n", *region)


@given(
    sizes=st.lists(st.sampled_from([0, 1, 700, 255 * 1024, 256 * 1024, 300 * 1024]), max_size=12)
)
@settings(max_examples=60, deadline=None)
def test_streaming_sha256_is_the_digest_of_its_pieces_in_order(sizes: list[int]) -> None:
    pieces = [bytes([n % 251]) * size for n, size in enumerate(sizes)]  # each piece its own bytes
    hasher = StreamingSha256()
    for piece in pieces:
        hasher.update(piece)
    assert hasher.digest() == hashlib.sha256(b"".join(pieces)).digest()

"""The agent's byte-level check (batchformat.relay) and the copy primitives it uses."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from batchformat import BatchRejected, RejectReason, SigningKey, verify_batch_file
from batchformat.fsops import WRITE_SLICE_BYTES, start_writeback, write_sliced
from tests.transfer_agent.conftest import Site
from tests.transfer_agent.test_delivery import NEVER, claim, reason, route
from transfer_agent.delivery import COPY_CHUNK_BYTES, Outcome, RouteDelivery


def resign(data: bytes, key: SigningKey, body: bytes) -> bytes:
    """The batch with its header kept, `body` as its records, and a valid trailer for it."""
    header, *_, trailer_line = data.splitlines(keepends=True)
    trailer = json.loads(trailer_line)["trailer"]
    content = header + body
    digest = hashlib.sha256(content).digest()
    trailer.update(record_count=body.count(b"\n"), sha256=digest.hex(), signature=key.sign(digest))
    return content + json.dumps({"trailer": trailer}, separators=(",", ":")).encode() + b"\n"


def test_a_batch_of_several_copy_chunks_arrives_byte_for_byte(site: Site) -> None:
    """Lines cross the chunk boundaries; the copy is the batch, and it verifies."""
    batch = site.batch(600, pad=20_000)  # about 12 MB: many copy chunks
    assert batch.stat().st_size > 2 * COPY_CHUNK_BYTES
    original = batch.read_bytes()
    result = RouteDelivery(route(site), site.trusted).deliver(claim(site, batch), NEVER)
    assert result.outcome is Outcome.DELIVERED
    delivered = site.destination / batch.name
    assert delivered.read_bytes() == original
    assert verify_batch_file(delivered, site.trusted).record_count == 600


def test_a_flipped_byte_past_the_first_chunk_is_quarantined(site: Site) -> None:
    batch = site.batch(600, pad=20_000)
    data = bytearray(batch.read_bytes())
    position = COPY_CHUNK_BYTES + 1000
    assert data[position : position + 1] == b"x"
    data[position] = ord("y")
    batch.write_bytes(data)
    result = RouteDelivery(route(site), site.trusted).deliver(claim(site, batch), NEVER)
    assert result.outcome is Outcome.QUARANTINED
    assert reason(site, batch.name)["code"] == "digest_mismatch"
    assert not list(site.destination.iterdir()), "no partial copy may remain"


def test_a_forgery_with_a_matching_digest_is_quarantined(
    site: Site, stranger_key: SigningKey
) -> None:
    """Changed records, the digest recomputed and signed by an untrusted key's holder."""
    batch = site.batch(3)
    data = batch.read_bytes()
    _, *records, _ = data.splitlines(keepends=True)
    forged = resign(data, stranger_key, b"".join(records).replace(b'"n":1', b'"n":7'))
    # The trailer still names the trusted key id; only the signature betrays the forger.
    batch.write_bytes(forged)
    result = RouteDelivery(route(site), site.trusted).deliver(claim(site, batch), NEVER)
    assert result.outcome is Outcome.QUARANTINED
    assert reason(site, batch.name)["code"] == "bad_signature"


def test_record_content_is_left_to_the_receiver(site: Site) -> None:
    """A signed batch with an empty record line is delivered; the receiver's reader refuses it.

    The agent never looked inside record lines (it does not parse their JSON); the empty
    line was the one exception, and scanning for it cost more than hashing.
    """
    batch = site.batch(3)
    data = batch.read_bytes()
    _, first, *rest, _ = data.splitlines(keepends=True)
    batch.write_bytes(resign(data, site.key, first + b"\n" + b"".join(rest)))
    result = RouteDelivery(route(site), site.trusted).deliver(claim(site, batch), NEVER)
    assert result.outcome is Outcome.DELIVERED
    with pytest.raises(BatchRejected) as rejected:
        verify_batch_file(site.destination / batch.name, site.trusted)
    assert rejected.value.reason is RejectReason.INVALID_JSON


def test_write_sliced_writes_every_byte(tmp_path: Path) -> None:
    data = os.urandom(3 * WRITE_SLICE_BYTES + 123)
    path = tmp_path / "out"
    with path.open("wb", buffering=0) as file:
        write_sliced(file, data)
        write_sliced(file, b"")
    assert path.read_bytes() == data


def test_start_writeback_keeps_the_bytes_and_ignores_what_cannot_be_synced(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out"
    with path.open("wb", buffering=0) as file:
        file.write(b"abc" * 1000)
        start_writeback(file, 0, 3000)
        start_writeback(file, 0, 0)  # 0: to the end of the file
    assert path.read_bytes() == b"abc" * 1000
    read_end, write_end = os.pipe()
    with open(write_end, "wb", buffering=0) as pipe:
        start_writeback(pipe, 0, 10)  # ESPIPE: nothing to do
    os.close(read_end)

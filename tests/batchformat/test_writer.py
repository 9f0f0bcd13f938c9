"""The writer: atomic publish, deterministic bytes, and no partial batch ever visible."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from batchformat import BatchWriter, SigningKey, TrustedKeys, verify_batch_file, write_batch
from tests.batchformat.conftest import echo_records, make_header


def test_the_file_appears_only_when_published(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    header = make_header()
    with BatchWriter(tmp_path, header, signing_key) as writer:
        writer.write_many(echo_records(10))
        assert [p.name for p in tmp_path.iterdir()] == [header.name.part_name]
    assert [p.name for p in tmp_path.iterdir()] == [header.name.file_name]
    assert verify_batch_file(tmp_path / header.name.file_name, trusted).record_count == 10


def test_an_exception_leaves_nothing_behind(tmp_path: Path, signing_key: SigningKey) -> None:
    def export() -> None:
        with BatchWriter(tmp_path, make_header(), signing_key) as writer:
            writer.write_many(echo_records(3))
            raise RuntimeError("exporter failed")

    with pytest.raises(RuntimeError):
        export()
    assert list(tmp_path.iterdir()) == []


def test_rendering_again_gives_identical_bytes(tmp_path: Path, signing_key: SigningKey) -> None:
    for name in "abcd":
        (tmp_path / name).mkdir()
    header = make_header()
    first = write_batch(tmp_path / "a", header, echo_records(100), signing_key)
    # Dicts whose keys come back in another order (as from PostgreSQL jsonb) still match.
    reordered = [{"payload": {"n": 1, "a": 2}, "kind": "x"}]
    original = [{"kind": "x", "payload": {"a": 2, "n": 1}}]
    second = write_batch(tmp_path / "b", header, echo_records(100), signing_key)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256
    x = write_batch(tmp_path / "c", header, original, signing_key).path.read_bytes()
    y = write_batch(tmp_path / "d", header, reordered, signing_key).path.read_bytes()
    assert x == y


def test_a_part_file_left_by_a_crash_is_reused(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    header = make_header()
    (tmp_path / header.name.part_name).write_bytes(b"half a batch from a killed writer")
    published = write_batch(tmp_path, header, echo_records(2), signing_key)
    assert verify_batch_file(published.path, trusted).record_count == 2
    assert not (tmp_path / header.name.part_name).exists()


def test_a_batch_being_written_by_a_live_process_is_not_touched(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    header = make_header()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
            str(tmp_path / header.name.part_name),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FileExistsError, match="being written by another process"):
            BatchWriter(tmp_path, header, signing_key)
    finally:
        holder.kill()
        holder.wait()


def test_the_private_key_file_is_only_readable_by_its_owner(key_dir: Path) -> None:
    assert os.stat(key_dir / "request-net-1.key").st_mode & 0o777 == 0o600


def test_memory_stays_flat_for_large_batches(tmp_path: Path, signing_key: SigningKey) -> None:
    # 300k records (~40 MB) through one writer: the buffer never holds more than ~1 MiB.
    header = make_header(batch_id=uuid.uuid4())
    with BatchWriter(tmp_path, header, signing_key) as writer:
        for i in range(300_000):
            writer.write({"kind": "ack", "batch_id": str(uuid.UUID(int=i)), "pad": "x" * 60})
            assert len(writer._buffer) < 2 << 20
    assert writer.publish().record_count == 300_000

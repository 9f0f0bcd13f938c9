"""Streaming batch writer: encrypt and hash as you write, sign, fsync, publish by rename."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import msgspec

from batchformat.agestream import BodyEncryptor
from batchformat.crypt import RecipientKeys
from batchformat.digest import StreamingSha256
from batchformat.fsops import fsync_dir, open_part_file, write_all
from batchformat.keys import SigningKey
from batchformat.models import FORMAT_ENCRYPTED, Header, Trailer, TrailerLine

FLUSH_BYTES = 1 << 20
ENCODE_GROUP = 256  # records encoded per call by write_many

# Sorted dict keys make a file rendered again from stored data (say, PostgreSQL jsonb, which
# reorders keys) identical byte for byte to the first rendering.
_encoder = msgspec.json.Encoder(order="deterministic")


@dataclass(frozen=True, slots=True)
class PublishedBatch:
    """A batch made visible in its folder."""

    path: Path
    header: Header
    record_count: int
    sha256: str
    size_bytes: int
    # The same for every rendering of the same records: the file's digest in clear text, the
    # digest of the record lines in clear when encrypted (each rendering's ciphertext differs:
    # age draws a new file key every time, and the recipients may have changed).
    content_sha256: str = ""


class BatchWriter:
    """Write one batch to `.{name}.part`, then publish it under its name; constant memory.

    Use as a context manager: leaving the block normally publishes the batch (or call
    `publish()`), leaving it with an exception removes the partial file. With `encrypt_to`
    the records are encrypted to those keys (`batchformat/2`, the header names their ids).
    """

    def __init__(
        self,
        directory: Path,
        header: Header,
        key: SigningKey,
        *,
        encrypt_to: RecipientKeys | None = None,
    ) -> None:
        if encrypt_to is not None:
            header = msgspec.structs.replace(
                header, format=FORMAT_ENCRYPTED, recipients=tuple(encrypt_to)
            )
        self.directory = directory
        self.header = header
        self._key = key
        self._final_path = directory / header.name.file_name
        self._part_path = directory / header.name.part_name
        self._file = open_part_file(self._part_path)
        self._hasher = StreamingSha256()
        self._buffer = bytearray()
        self._size = 0
        self._count = 0
        self._published: PublishedBatch | None = None
        self._encryptor: BodyEncryptor | None = None
        self._append(_encoder.encode(header))
        if encrypt_to is not None:
            self._flush()  # the header in clear; what follows goes through the cipher
            self._encryptor = BodyEncryptor(encrypt_to, self._write_hashed)

    def write(self, record: Any) -> None:
        """Append one record: a msgspec Struct of the caller's tagged union, or a dict."""
        buffer = self._buffer
        _encoder.encode_into(record, buffer, -1)
        buffer.append(0x0A)
        self._count += 1
        if len(buffer) >= FLUSH_BYTES:
            self._flush()

    def write_many(self, records: Iterable[Any]) -> None:
        """Append records in order (faster than `write` one by one)."""
        iterator = iter(records)
        while group := list(islice(iterator, ENCODE_GROUP)):
            self._buffer += _encoder.encode_lines(group)
            self._count += len(group)
            if len(self._buffer) >= FLUSH_BYTES:
                self._flush()

    def publish(self) -> PublishedBatch:
        """Add the signed trailer, fsync, rename to the final name, fsync the folder."""
        if self._published is not None:
            return self._published
        self._flush()
        content = ""
        if self._encryptor is not None:
            content = self._encryptor.finish()  # the digest of the record lines in clear
            self._write_hashed(b"\n")  # ends the binary body: the trailer is the last line
        digest = self._hasher.digest()
        content = content or digest.hex()
        trailer = Trailer(
            record_count=self._count,
            sha256=digest.hex(),
            key_id=self._key.key_id,
            signature=self._key.sign(digest),
        )
        trailer_line = _encoder.encode(TrailerLine(trailer)) + b"\n"
        self._write_all(trailer_line)
        os.fsync(self._file.fileno())
        # Renaming while holding the lock keeps a competing writer of the same batch from
        # truncating the file after it became visible (see open_part_file).
        os.replace(self._part_path, self._final_path)
        self._file.close()
        fsync_dir(self.directory)
        self._published = PublishedBatch(
            self._final_path, self.header, self._count, trailer.sha256, self._size, content
        )
        return self._published

    def abort(self) -> None:
        """Remove the partial file; the batch never becomes visible."""
        if self._encryptor is not None:
            self._encryptor.abandon()
        self._hasher.close()
        if self._published is None and not self._file.closed:
            self._part_path.unlink(missing_ok=True)
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.publish()
        else:
            self.abort()

    def _append(self, line: bytes) -> None:
        self._buffer += line
        self._buffer.append(0x0A)

    def _flush(self) -> None:
        if self._buffer:
            # The hashing thread (or the encryptor) may hold this buffer while we go on:
            # neither changes it, and the next records go to a new one.
            if self._encryptor is not None:
                self._encryptor.feed(memoryview(self._buffer))
            else:
                self._write_hashed(memoryview(self._buffer))
            self._buffer = bytearray()

    def _write_hashed(self, data: bytes | memoryview) -> None:
        self._hasher.update(data)
        self._write_all(data)

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        write_all(self._file, data)
        self._size += len(data)


def write_batch(
    directory: Path,
    header: Header,
    records: Iterable[Any],
    key: SigningKey,
    *,
    encrypt_to: RecipientKeys | None = None,
) -> PublishedBatch:
    """Write and publish a whole batch in one call."""
    with BatchWriter(directory, header, key, encrypt_to=encrypt_to) as writer:
        writer.write_many(records)
    return writer.publish()

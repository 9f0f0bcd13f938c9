"""The push parser: a batch's bytes in pieces of any size, verified in one pass.

One pass, constant memory, success only after the trailer. It knows nothing of files:
`batchformat.reader` feeds it a file's chunks, the transfer agent what it copies. The
parser frames the header, the record lines of `batchformat/1` and the trailer, and checks
the count, digest and signature; `batchformat.lines` decodes the framed lines,
`batchformat.body.EncryptedBody` frames and decrypts a `batchformat/2` body.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from batchformat.body import EncryptedBody
from batchformat.crypt import DecryptionKeys
from batchformat.digest import StreamingSha256
from batchformat.errors import BatchRejected, RejectReason
from batchformat.keys import TrustedKeys
from batchformat.lines import (
    DECODE_ERRORS,
    NEWLINE,
    Lines,
    count_newlines,
    decode_lines,
    error_text,
)
from batchformat.models import (
    FORMAT,
    FORMAT_ENCRYPTED,
    FORMATS,
    BatchName,
    FormatProbe,
    Header,
    KindedRecord,
    Trailer,
    TrailerLine,
)

DEFAULT_MAX_LINE_BYTES: Final = 16 * 1024 * 1024

_untyped = msgspec.json.Decoder()
_header_decoder = msgspec.json.Decoder(Header)
_trailer_decoder = msgspec.json.Decoder(TrailerLine)
_probe_decoder = msgspec.json.Decoder(FormatProbe)


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """A batch whose framing, count, digest and (if keys were given) signature checked out."""

    header: Header
    trailer: Trailer
    record_count: int
    sha256: str
    size_bytes: int
    signature_checked: bool
    encrypted: bool = False


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the reader of a particular file expects its header to say."""

    name: BatchName | None = None
    source: str | None = None
    destination: str | None = None


NO_EXPECTATIONS: Final = Expectations()
"""Expect nothing of the header beyond the format."""


class BatchParser:
    """Incremental verifier: `feed` bytes in pieces of any size, then `finish`.

    `feed` returns the records it completed (decoded into `record_type`, a msgspec type such
    as a tagged union); they are provisional until `finish` returns, which checks the trailer.
    With `decode_records=False` only framing is checked (lines, count, digest, signature).
    `trusted_keys=None` skips the signature check; only inspection should do that.

    An encrypted batch (`batchformat/2`) is decrypted with `decryption_keys` when records
    are decoded; its last records come out of `end()`, which also checks the trailer, the
    digest and the signature before any decryption failure is reported. Forwarding
    (`decode_records=False`) needs no decryption key. `accept_unencrypted=False` refuses
    `batchformat/1` (`unencrypted_refused`).
    """

    def __init__(
        self,
        trusted_keys: TrustedKeys | None,
        record_type: Any = KindedRecord,
        *,
        decode_records: bool = True,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        expect: Expectations = NO_EXPECTATIONS,
        decryption_keys: DecryptionKeys | None = None,
        accept_unencrypted: bool = True,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._keys = trusted_keys
        self._decoder = msgspec.json.Decoder(record_type) if decode_records else None
        self._max_line = max_line_bytes
        self._expect = expect
        self._hasher = StreamingSha256()
        self._tail = b""  # bytes after the last newline seen
        self._held: bytes | None = None  # last complete line: a record, or the trailer
        self._lines = 0  # complete lines known not to be the last one
        self._size = 0
        self._work: list[Lines] = []  # framed lines waiting to be decoded
        self._pending: Iterator[Any] | None = None
        self._decryption_keys = decryption_keys
        self._accept_unencrypted = accept_unencrypted
        self._body: EncryptedBody | None = None  # batchformat/2 only
        self._ended = False
        self.header: Header | None = None
        self.trailer: Trailer | None = None

    @property
    def records_seen(self) -> int:
        """Record lines read so far (the last line is only counted once it is known)."""
        return max(self._lines - 1, 0)

    def feed(self, data: bytes) -> Iterator[Any]:
        """Take the next bytes of the file; return an iterator over the records they complete.

        Framing is checked at once; records are decoded as the iterator is consumed, a slice
        at a time, so few objects are alive together. Whatever is not consumed is decoded
        (and checked) by the next `feed` or by `finish`.
        """
        self._drain()
        self._size += len(data)
        try:
            if self.header is None:
                data = self._feed_header(data)
            if self._body is not None:
                self._feed_body(data)
            elif len(data) <= self._max_line:
                self._feed_piece(data)
            else:  # pieces no longer than the limit keep the line-length check O(1)
                for start in range(0, len(data), self._max_line):
                    self._feed_piece(data[start : start + self._max_line])
        except BaseException:
            self.close()
            raise
        work, self._work = self._work, []
        self._pending = self._decode(work) if work else iter(())
        return self._pending

    def end(self) -> Iterator[Any]:
        """Say the file ended: check the trailer of an encrypted batch, yield its last records.

        For `batchformat/1` there is nothing left and `finish` checks everything.
        """
        self._drain()
        if self._ended or self._body is None:
            return iter(())
        self._ended = True
        try:
            self._end_encrypted()
        except BaseException:
            self.close()
            raise
        work = self._take_work()
        self._pending = self._decode(work) if work else iter(())
        return self._pending

    def finish(self) -> VerifiedBatch:
        """Check the trailer once the whole file was fed; raise BatchRejected if it fails.

        Records `end()` would have yielded are checked and dropped if it was not iterated.
        """
        try:
            for _ in self.end():
                pass
            return self._finish()
        finally:
            self.close()

    def close(self) -> None:
        """Release the helper threads; for a parser abandoned before `finish`."""
        self._hasher.close()
        if self._body is not None:
            self._body.close()

    def _drain(self) -> None:
        if self._pending is not None:
            for _ in self._pending:
                pass
            self._pending = None

    def _finish(self) -> VerifiedBatch:
        if self.header is None:
            if self._tail:
                raise BatchRejected(
                    RejectReason.TRAILER_MISSING,
                    "the file does not end with a newline: it was cut short",
                    line=1,
                )
            raise BatchRejected(RejectReason.HEADER_MISSING, "the file is empty")
        if self._body is not None:
            return self._finish_encrypted()
        if self._tail:
            raise BatchRejected(
                RejectReason.TRAILER_MISSING,
                "the file does not end with a newline: it was cut short",
                line=self._lines + (2 if self._held is not None else 1),
            )
        if self._held is None:
            raise BatchRejected(
                RejectReason.TRAILER_MISSING, "the file holds only a header", line=2
            )
        header = self.header
        trailer = self.trailer = self._parse_trailer(self._held, line_no=self._lines + 1)
        record_count = self._lines - 1
        if trailer.record_count != record_count:
            raise BatchRejected(
                RejectReason.RECORD_COUNT_MISMATCH,
                f"the trailer announces {trailer.record_count} records, "
                f"the file holds {record_count}",
            )
        digest = self._hasher.digest()
        if trailer.sha256 != digest.hex():
            raise BatchRejected(
                RejectReason.DIGEST_MISMATCH,
                "the SHA-256 of the content differs from the trailer's",
            )
        if self._keys is not None:
            self._check_signature(trailer, digest)
        return VerifiedBatch(
            header, trailer, record_count, trailer.sha256, self._size, self._keys is not None
        )

    def _feed_header(self, data: bytes) -> bytes:
        """Take bytes until the header line is complete; return what follows it."""
        newline = data.find(NEWLINE)
        if len(self._tail) + (len(data) if newline < 0 else newline) > self._max_line:
            self._reject_long_line()
        if newline < 0:
            self._tail += data
            return b""
        line, self._tail = self._tail + data[: newline + 1], b""
        self._hasher.update(line)
        self._lines = 1
        self._parse_header(line)
        return data[newline + 1 :]

    def _start_body(self, header: Header) -> None:
        """Set up the framing (and decryption, if records are decoded) of a `/2` body."""
        keys = (self._decryption_keys or DecryptionKeys()) if self._decoder is not None else None
        self._body = EncryptedBody(
            header.recipients or (), self._hasher.update, keys, self._max_line
        )

    def _feed_body(self, data: bytes) -> None:
        assert self._body is not None
        if (lines := self._body.feed(data)) is not None:
            self._work.append(lines)

    def _take_work(self) -> list[Lines]:
        work, self._work = self._work, []
        return work

    def _end_encrypted(self) -> None:
        assert self._body is not None
        trailer = self.trailer = self._parse_trailer(self._body.trailer_line(), line_no=None)
        digest = self._hasher.digest()
        if trailer.sha256 != digest.hex():
            raise BatchRejected(
                RejectReason.DIGEST_MISMATCH,
                "the SHA-256 of the content differs from the trailer's",
            )
        if self._keys is not None:
            self._check_signature(trailer, digest)
        if (lines := self._body.end()) is not None:
            self._work.append(lines)

    def _finish_encrypted(self) -> VerifiedBatch:
        assert self.header is not None
        assert self.trailer is not None
        assert self._body is not None
        trailer = self.trailer
        record_count = trailer.record_count
        if self._body.decrypting:
            record_count = self._body.record_lines
            if trailer.record_count != record_count:
                raise BatchRejected(
                    RejectReason.RECORD_COUNT_MISMATCH,
                    f"the trailer announces {trailer.record_count} records, "
                    f"the body holds {record_count}",
                )
        return VerifiedBatch(
            self.header, trailer, record_count, trailer.sha256, self._size,
            self._keys is not None, encrypted=True,
        )  # fmt: skip

    def _feed_piece(self, piece: bytes) -> None:
        first_nl = piece.find(NEWLINE)
        if first_nl < 0:
            if len(self._tail) + len(piece) > self._max_line:
                self._reject_long_line()
            self._tail += piece
            return
        if len(self._tail) + first_nl > self._max_line:
            self._reject_long_line()
        last_nl = piece.rfind(NEWLINE)
        completed = self._tail + piece[: first_nl + 1]
        self._tail = piece[last_nl + 1 :]
        if self._held is not None:
            self._line(self._held)
        if first_nl == last_nl:
            self._held = completed
            return
        # Lines strictly inside the piece: all but the last are certainly not the trailer.
        last_start = piece.rfind(NEWLINE, 0, last_nl) + 1
        self._line(completed)
        if last_start > first_nl + 1:
            self._bulk(piece, first_nl + 1, last_start)
        self._held = piece[last_start : last_nl + 1]

    def _line(self, line: bytes) -> None:
        """Frame one complete line that is known not to be the last."""
        self._hasher.update(line)
        self._lines += 1
        if self._decoder is not None:
            self._work.append(Lines(self._lines, line, 0, len(line)))
        elif line == NEWLINE:
            raise BatchRejected(RejectReason.INVALID_JSON, "empty line", line=self._lines)

    def _bulk(self, piece: bytes, start: int, end: int) -> None:
        """Frame the lines in piece[start:end], all complete and none the last."""
        self._hasher.update(memoryview(piece)[start:end])
        first_line = self._lines + 1
        self._lines += count_newlines(piece, start, end)
        if self._decoder is not None:
            self._work.append(Lines(first_line, piece, start, end))
            return
        blank = piece.find(b"\n\n", start - 1, end)
        if blank >= 0:
            line = first_line + piece.count(NEWLINE, start, blank + 1)
            raise BatchRejected(RejectReason.INVALID_JSON, "empty line", line=line)

    def _decode(self, work: list[Lines]) -> Iterator[Any]:
        assert self._decoder is not None
        try:
            yield from decode_lines(self._decoder, work)
        except BaseException:
            self.close()
            raise

    def _parse_header(self, line: bytes) -> None:
        try:
            header = _header_decoder.decode(line)
        except DECODE_ERRORS as exc:
            try:
                fmt = _probe_decoder.decode(line).format
            except DECODE_ERRORS:
                fmt = FORMAT
            if fmt not in FORMATS:
                raise _unsupported(fmt) from None
            raise BatchRejected(RejectReason.HEADER_INVALID, error_text(exc), line=1) from None
        if header.format not in FORMATS:
            raise _unsupported(header.format)
        if header.encrypted == (header.recipients is msgspec.UNSET):
            raise BatchRejected(
                RejectReason.HEADER_INVALID,
                f"`recipients` is required in {FORMAT_ENCRYPTED} and not allowed in {FORMAT}",
                line=1,
            )
        self._check_expectations(header)
        if not header.encrypted and not self._accept_unencrypted:
            raise BatchRejected(
                RejectReason.UNENCRYPTED_REFUSED,
                f"{FORMAT} batches (records in clear) are not accepted here",
                line=1,
            )
        self.header = header
        if header.encrypted:
            self._start_body(header)

    def _check_expectations(self, header: Header) -> None:
        expect = self._expect
        if expect.name is not None and expect.name != header.name:
            raise BatchRejected(
                RejectReason.NAME_MISMATCH,
                f"the file is named {expect.name.file_name} but its header says "
                f"{header.name.file_name}",
            )
        if expect.source is not None and header.source != expect.source:
            raise BatchRejected(
                RejectReason.SOURCE_MISMATCH,
                f"batch comes from {header.source!r}, expected {expect.source!r}",
            )
        if expect.destination is not None and header.destination != expect.destination:
            raise BatchRejected(
                RejectReason.DESTINATION_MISMATCH,
                f"batch is addressed to {header.destination!r}, expected {expect.destination!r}",
            )

    def _parse_trailer(self, line: bytes, *, line_no: int | None) -> Trailer:
        try:
            return _trailer_decoder.decode(line).trailer
        except DECODE_ERRORS as exc:
            try:
                looks_like_trailer = "trailer" in _untyped.decode(line)
            except (*DECODE_ERRORS, TypeError):
                looks_like_trailer = False
            if looks_like_trailer:
                raise BatchRejected(
                    RejectReason.TRAILER_INVALID, error_text(exc), line=line_no
                ) from None
            raise BatchRejected(
                RejectReason.TRAILER_MISSING,
                "the last line is not a trailer: the file was cut short",
                line=line_no,
            ) from None

    def _check_signature(self, trailer: Trailer, digest: bytes) -> None:
        assert self._keys is not None
        if trailer.key_id not in self._keys:
            raise BatchRejected(
                RejectReason.UNKNOWN_KEY,
                f"signed with key {trailer.key_id!r}, which is not trusted",
            )
        if not self._keys.verify(trailer.key_id, digest, trailer.signature):
            raise BatchRejected(
                RejectReason.BAD_SIGNATURE,
                f"the signature does not verify with key {trailer.key_id!r}",
            )

    def _reject_long_line(self) -> None:
        line = self._lines + (2 if self._held is not None else 1)
        raise BatchRejected(
            RejectReason.LINE_TOO_LONG, f"a line is longer than {self._max_line} bytes", line=line
        )


def _unsupported(fmt: str) -> BatchRejected:
    return BatchRejected(
        RejectReason.UNSUPPORTED_FORMAT,
        f"format {fmt[:40]!r} is not {FORMAT!r} or {FORMAT_ENCRYPTED!r}",
        line=1,
    )

"""Record lines: framed complete lines, decoded a slice at a time with their line numbers.

The parser frames lines (of a `batchformat/1` file, or of an encrypted body's plaintext)
into `Lines`; `decode_lines` turns them into records and, where one does not decode, says
which line it is and why: bad UTF-8, bad JSON, a blank line, or not a valid record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from batchformat.errors import BatchRejected, RejectReason

# Records are decoded this many bytes at a time: small enough that few objects are alive
# together (the cyclic GC stays cheap), large enough to amortise the call.
DECODE_SLICE_BYTES: Final = 64 * 1024
NEWLINE: Final = b"\n"

DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError)
_untyped = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Lines:
    """Complete lines data[start:end], the first being line number `first_line`."""

    first_line: int
    data: bytes
    start: int
    end: int


def decode_lines(decoder: msgspec.json.Decoder[Any], work: Iterable[Lines]) -> Iterator[Any]:
    """Decode framed lines a slice at a time; the slice is all that is alive at once."""
    decode = decoder.decode_lines
    for lines in work:
        data, line_no = lines.data, lines.first_line
        view = memoryview(data)
        position = lines.start
        while position < lines.end:
            stop = _slice_end(data, position, lines.end)
            count = data.count(NEWLINE, position, stop)
            try:
                decoded = decode(view[position:stop])
            except DECODE_ERRORS:
                decoded = []
            if len(decoded) != count:  # a bad line, or a blank one decode_lines skips
                raise _locate_bad_line(decoder, data[position:stop], line_no)
            yield from decoded
            line_no += count
            position = stop


def error_text(exc: Exception) -> str:
    """A decoder's message, cut to a length fit for a reason file."""
    return str(exc)[:300]


def _slice_end(data: bytes, start: int, end: int) -> int:
    """End of the next decoding slice: about DECODE_SLICE_BYTES, on a line boundary."""
    stop = data.rfind(NEWLINE, start, min(start + DECODE_SLICE_BYTES, end)) + 1
    if stop > start:
        return stop
    return data.find(NEWLINE, start, end) + 1  # one line longer than a slice


def _locate_bad_line(
    decoder: msgspec.json.Decoder[Any], data: bytes, first_line: int
) -> BatchRejected:
    for offset, line in enumerate(data.split(NEWLINE)[:-1]):
        try:
            decoder.decode(line)
        except DECODE_ERRORS:
            return _classify(line, decoder, first_line + offset)
    raise AssertionError("decode_lines failed but every line decodes")  # pragma: no cover


def _classify(line: bytes, decoder: msgspec.json.Decoder[Any], line_no: int) -> BatchRejected:
    """Tell why one line does not decode: bad UTF-8, bad JSON, or not a valid record."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BatchRejected(
            RejectReason.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}", line=line_no
        )
    if line.strip() == b"":
        return BatchRejected(RejectReason.INVALID_JSON, "empty line", line=line_no)
    try:
        _untyped.decode(line)
    except msgspec.DecodeError as exc:
        return BatchRejected(RejectReason.INVALID_JSON, error_text(exc), line=line_no)
    try:
        decoder.decode(line)
    except msgspec.DecodeError as exc:
        return BatchRejected(RejectReason.RECORD_INVALID, error_text(exc), line=line_no)
    raise AssertionError("line decodes after all")  # pragma: no cover

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

# `bytes.count` of one byte runs a plain loop: 0.25-0.39 s per GiB on this 2-core machine,
# the largest cost on the transfer agent's main thread. `replace` finds each newline with
# memchr, so where lines are long, as records are, counting what it removed is faster (0.06 s
# per GiB for 280-byte lines, 0.16 s for 60-byte ones); where they are short it is slower
# (0.8 s for 10-byte lines, 4 s for 2-byte ones). A sample of each region picks the way.
_COUNT_SAMPLE_BYTES: Final = 4096
_COUNT_DENSE: Final = 96  # newlines in a sample past which `count` wins (lines under ~40 bytes)
_COUNT_FAST_MIN_BYTES: Final = 64 * 1024
_untyped = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Lines:
    """Complete lines data[start:end], the first being line number `first_line`."""

    first_line: int
    data: bytes
    start: int
    end: int


def count_newlines(data: bytes, start: int = 0, end: int | None = None) -> int:
    """`data.count(b"\\n", start, end)`, faster on long lines (see above)."""
    end = len(data) if end is None else end
    size = end - start
    if (
        size < _COUNT_FAST_MIN_BYTES
        or data.count(NEWLINE, start, start + _COUNT_SAMPLE_BYTES) > _COUNT_DENSE
    ):
        return data.count(NEWLINE, start, end)
    if len(data) - size <= size // 8:  # nearly all of it: no copy of the region
        total = len(data) - len(data.replace(NEWLINE, b""))
        return total - data.count(NEWLINE, 0, start) - data.count(NEWLINE, end)
    region = data[start:end]
    return size - len(region.replace(NEWLINE, b""))


def decode_lines(decoder: msgspec.json.Decoder[Any], work: Iterable[Lines]) -> Iterator[Any]:
    """Decode framed lines a slice at a time; the slice is all that is alive at once."""
    decode = decoder.decode_lines
    for lines in work:
        data, line_no = lines.data, lines.first_line
        view = memoryview(data)
        position = lines.start
        while position < lines.end:
            stop = _slice_end(data, position, lines.end)
            count = count_newlines(data, position, stop)
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

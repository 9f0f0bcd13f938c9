"""The relay's check (the transfer agent's) reports what the parser reports, counts included.

The relay counts the lines of whole ranges of a piece at once (`RelayParser._bulk`), and
large pieces are hashed on a thread (batchformat.digest); these tests feed multi-MiB
batches in pieces below and above that threshold and compare each outcome with
`BatchParser(decode_records=False)`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchformat import BatchParser, BatchRejected, RejectReason, SigningKey, TrustedKeys
from batchformat.digest import THREAD_MIN_BYTES
from batchformat.relay import RelayParser
from tests.batchformat.conftest import make_header
from tests.batchformat.rawbatch import signed_file

PIECES = (1000, THREAD_MIN_BYTES - 1, THREAD_MIN_BYTES * 3, 4 << 20)
LINE = b'{"kind":"echo","request_id":"00000000-0000-0000-0000-000000000001","payload":{}}\n'


def outcome(parser: BatchParser, data: bytes, piece: int) -> tuple[object, ...]:
    """What the parser made of the data: the record count, or the rejection and its line."""
    try:
        for start in range(0, len(data), piece):
            parser.feed(data[start : start + piece])
        return ("verified", parser.finish().record_count)
    except BatchRejected as rejected:
        parser.close()
        return (rejected.reason, rejected.line, str(rejected))


def both(path: Path, trusted: TrustedKeys, piece: int, max_line: int) -> list[tuple[object, ...]]:
    data = path.read_bytes()
    return [
        outcome(RelayParser(trusted, max_line_bytes=max_line), data, piece),
        outcome(BatchParser(trusted, decode_records=False, max_line_bytes=max_line), data, piece),
    ]


@pytest.mark.parametrize("piece", PIECES)
def test_a_whole_batch_is_counted_exactly(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, piece: int
) -> None:
    lines = [LINE] * 60_000  # about 5 MB
    path = signed_file(tmp_path, make_header(), lines, signing_key)
    relay, parser = both(path, trusted, piece, max_line=1 << 20)
    assert relay == parser == ("verified", 60_000)


@pytest.mark.parametrize("piece", PIECES)
def test_a_trailer_announcing_one_record_more_is_a_count_mismatch(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, piece: int
) -> None:
    lines = [LINE] * 60_000
    path = signed_file(tmp_path, make_header(), lines, signing_key, record_count=60_001)
    relay, parser = both(path, trusted, piece, max_line=1 << 20)
    assert relay == parser
    assert relay[0] is RejectReason.RECORD_COUNT_MISMATCH
    assert "announces 60001 records, the file holds 60000" in str(relay[2])


@pytest.mark.parametrize("piece", PIECES)
def test_a_long_line_deep_in_the_batch_is_reported_with_its_number(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, piece: int
) -> None:
    # With a 1 MiB limit the pieces before it are big: hashed on the thread, counted in bulk.
    long_line = LINE[:-3] + b"x" * (1 << 20) + b"}}\n"
    lines = [LINE] * 50_000 + [long_line] + [LINE] * 100
    path = signed_file(tmp_path, make_header(), lines, signing_key)
    relay, parser = both(path, trusted, piece, max_line=1 << 20)
    assert relay == parser
    assert relay[:2] == (RejectReason.LINE_TOO_LONG, 50_002)

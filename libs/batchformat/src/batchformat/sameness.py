"""Whether two files under one batch name are the same batch (a resend, a second copy).

A `batchformat/1` rendering is deterministic: the same batch is the same bytes. A
`batchformat/2` rendering is not (age draws a new file key each time, and a rotation may
change the recipients), so two encrypted files are the same batch when their headers agree
on everything but `recipients`, their trailers announce the same record count, and the
candidate verifies with the trusted keys: only the sender could have signed it, and the
sender renders a batch id from one set of stored rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from batchformat.errors import BatchRejected
from batchformat.fsops import open_regular_file
from batchformat.keys import TrustedKeys
from batchformat.models import Header, TrailerLine
from batchformat.reader import BatchReader

_HEADER_LIMIT = 64 * 1024
_TAIL_BYTES = 64 * 1024


def same_batch(candidate: Path, existing: Path, trusted: TrustedKeys | None) -> bool:
    """Whether `candidate` is the batch `existing` already is (see the module docstring).

    `trusted=None` skips the signature check, for a candidate verified already.
    """
    if candidate.lstat().st_size == existing.lstat().st_size and _sha256(candidate) == _sha256(
        existing
    ):
        return True
    a, b = _identity(candidate), _identity(existing)
    if a is None or b is None or a != b or not a[0].encrypted:
        return False
    if trusted is None:
        return True
    try:
        BatchReader(candidate, trusted, decode_records=False, check_name=False).verify()
    except BatchRejected:
        return False
    return True


def _identity(path: Path) -> tuple[Header, int] | None:
    """The header without its recipients, and the trailer's record count."""
    try:
        with open_regular_file(path) as file:
            line = file.readline(_HEADER_LIMIT)
            size = path.lstat().st_size
            file.seek(max(size - _TAIL_BYTES, 0))
            tail = file.read()
        header = msgspec.json.decode(line, type=Header)
        trailer = msgspec.json.decode(tail.rsplit(b"\n", 2)[-2], type=TrailerLine).trailer
    except (msgspec.DecodeError, UnicodeDecodeError, IndexError, OSError):
        return None
    return msgspec.structs.replace(header, recipients=msgspec.UNSET), trailer.record_count


def _sha256(path: Path) -> bytes:
    with open_regular_file(path) as file:
        return hashlib.file_digest(file, "sha256").digest()

"""Build batch files byte by byte, correctly signed, to test what a reader makes of them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from batchformat import Header, SigningKey


def header_bytes(header: Header) -> bytes:
    return msgspec.json.encode(header) + b"\n"


def signed_file(
    directory: Path,
    header: Header,
    lines: list[bytes],
    key: SigningKey,
    *,
    record_count: int | None = None,
    head: bytes | None = None,
) -> Path:
    """A batch whose body is `head` (default: the header's line) and `lines`, signed over it."""
    body = (head if head is not None else header_bytes(header)) + b"".join(lines)
    digest = hashlib.sha256(body).digest()
    trailer = {
        "trailer": {
            "record_count": len(lines) if record_count is None else record_count,
            "sha256": digest.hex(),
            "key_id": key.key_id,
            "signature": key.sign(digest),
        }
    }
    path = directory / header.name.file_name
    path.write_bytes(body + msgspec.json.encode(trailer) + b"\n")
    return path

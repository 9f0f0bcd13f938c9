"""Batches made by hand for the end-to-end tests: forged, corrupted, replayed, and how to
drop one into a drop zone the way the transfer agent would (atomically, under its name)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from batchformat import (
    BatchReader,
    DecryptionKeys,
    Header,
    SigningKey,
    load_signing_key,
    write_batch,
)

# Far above any sequence number a test stack reaches, and different each time.
FOREIGN_SEQ_BASE = 900_000_000
# A marker a record carries so that `corrupt` can change it (same length).
UNTOUCHED = b"untouched"
TAMPERED = b"tampered!"


def forged_key(key_id: str | None = None) -> SigningKey:
    """A key nobody trusts: under an id nobody knows, or posing as a real key's id."""
    return SigningKey(key_id or f"intruder-{secrets.token_hex(4)}", Ed25519PrivateKey.generate())


def side_key(data_dir: Path, network_id: str) -> SigningKey:
    """A side's real signing key, from its data folder."""
    return load_signing_key(data_dir / "keys" / f"{network_id}.key")


def make_batch(
    folder: Path, *, source: str, destination: str, records: Sequence[Any], key: SigningKey
) -> Path:
    """A signed batch written (and published) in `folder`, which must not be a drop zone
    anyone watches; a sequence number no real batch has."""
    header = Header(
        batch_id=uuid.uuid4(),
        source=source,
        destination=destination,
        seq=FOREIGN_SEQ_BASE + secrets.randbelow(10_000_000),
        created_at=datetime.now(UTC),
    )
    folder.mkdir(parents=True, exist_ok=True)
    return write_batch(folder, header, records, key).path


def corrupt(path: Path) -> None:
    """Change a few characters inside a record, keeping it valid JSON of its kind: only the
    trailer's digest (and so the signature over it) tells."""
    content = path.read_bytes()
    assert content.count(UNTOUCHED) == 1, "make the batch with one UNTOUCHED marker"
    path.write_bytes(content.replace(UNTOUCHED, TAMPERED))


def drop(path: Path, zone: Path) -> Path:
    """Publish a copy of `path` in `zone` under its own name: written under a hidden name,
    then renamed, so a watcher never sees half of it."""
    target = zone / path.name
    hidden = zone / f".{path.name}.part"
    shutil.copyfile(path, hidden)
    os.replace(hidden, target)
    return target


def quarantined(zone: Path, name: str) -> dict[str, Any] | None:
    """The `.reason.json` of a quarantined batch, or None while it is not quarantined."""
    reason = zone / "quarantine" / f"{name}.reason.json"
    if not reason.exists() or not (zone / "quarantine" / name).exists():
        return None
    document: dict[str, Any] = json.loads(reason.read_text())
    return document


def record_lines(path: Path) -> list[bytes]:
    """A batch's record lines in clear: decrypted with the demo's keys if encrypted.

    The keys are the `*.agekey` of both sides of the demo folder the batch is in.
    """
    content = path.read_bytes()
    if json.loads(content.partition(b"\n")[0])["format"] != "batchformat/2":
        return content.splitlines()[1:-1]  # between the header and the trailer
    reader = BatchReader(
        path, None, msgspec.Raw, check_name=False, decryption_keys=_demo_keys(path)
    )
    return [bytes(record) for record in reader.records()]


def is_encrypted(path: Path) -> bool:
    """Whether a batch file is `batchformat/2`."""
    with path.open("rb") as file:
        header: dict[str, Any] = json.loads(file.readline())
    return bool(header["format"] == "batchformat/2")


def _demo_keys(path: Path) -> DecryptionKeys:
    for folder in path.parents:
        if (folder / "gateway").is_dir() and (folder / "processor").is_dir():
            return DecryptionKeys.from_files(sorted(folder.glob("*/keys/*.agekey")))
    raise AssertionError(f"{path} is not inside a demo folder")


def batches_mentioning(folder: Path, *needles: str) -> list[Path]:
    """Batch files in `folder` (not below it) whose records, in clear, hold every needle."""
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        try:
            text = b"\n".join(record_lines(path)).decode(errors="replace")
        except FileNotFoundError:  # taken by the agent or the importer meanwhile
            continue
        if all(needle in text for needle in needles):
            found.append(path)
    return found


def batches_with(folder: Path, matches: Callable[[dict[str, Any]], bool]) -> list[Path]:
    """Batch files in `folder` (not below it) holding a record for which `matches` is true."""
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        if any(matches(json.loads(line)) for line in record_lines(path)):
            found.append(path)
    return found

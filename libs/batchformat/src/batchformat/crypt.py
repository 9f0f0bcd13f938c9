"""Keys of encrypted batch bodies: the age format (X25519 recipients, chunked ChaCha20-Poly1305).

The cipher is pyrage, the binding of the reference Rust implementation of age, driven by
batchformat.agestream; the `age` command decrypts the same bytes (docs/batch-format.md
gives the recipe).

Keys are files named after their key id: `ID.agekey` (the identity, `AGE-SECRET-KEY-1…`,
mode 600, the format `age-keygen` writes) and `ID.agepub` (the recipient, `age1…`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pyrage
from pyrage import x25519

from batchformat.errors import BatchRejected, KeyFileError, RejectReason
from batchformat.keys import check_key_id, read_key_file, write_new_file

IDENTITY_SUFFIX: Final = ".agekey"
RECIPIENT_SUFFIX: Final = ".agepub"


class RecipientKeys(Mapping[str, x25519.Recipient]):
    """Public keys a writer encrypts to, by key id (every one of them can decrypt)."""

    def __init__(self, keys: Mapping[str, x25519.Recipient] | None = None) -> None:
        self._keys = dict(keys or {})

    def __getitem__(self, key_id: str) -> x25519.Recipient:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> RecipientKeys:
        """Each `ID.agepub` file under its key id; the same id twice is an error."""
        keys: dict[str, x25519.Recipient] = {}
        for path in paths:
            key_id = _key_id_of(path, RECIPIENT_SUFFIX)
            if key_id in keys:
                raise KeyFileError(f"key id {key_id!r} is given twice ({path})")
            keys[key_id] = load_recipient(path)
        return cls(keys)

    @classmethod
    def from_directory(cls, directory: Path) -> RecipientKeys:
        """Every `*.agepub` file in a folder."""
        return cls.from_files(sorted(directory.glob(f"*{RECIPIENT_SUFFIX}")))


class DecryptionKeys(Mapping[str, x25519.Identity]):
    """Private keys a receiver decrypts with, by key id; several during a rotation."""

    def __init__(self, keys: Mapping[str, x25519.Identity] | None = None) -> None:
        self._keys = dict(keys or {})

    def __getitem__(self, key_id: str) -> x25519.Identity:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never the secret: str(Identity) is the key itself
        return f"DecryptionKeys({sorted(self._keys)!r})"

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> DecryptionKeys:
        """Each `ID.agekey` file under its key id; refused unless only its owner can read it."""
        keys: dict[str, x25519.Identity] = {}
        for path in paths:
            key_id = _key_id_of(path, IDENTITY_SUFFIX)
            if key_id in keys:
                raise KeyFileError(f"key id {key_id!r} is given twice ({path})")
            keys[key_id] = load_identity(path)
        return cls(keys)

    @classmethod
    def from_directory(cls, directory: Path) -> DecryptionKeys:
        """Every `*.agekey` file in a folder."""
        return cls.from_files(sorted(directory.glob(f"*{IDENTITY_SUFFIX}")))


def generate_encryption_key_pair(key_id: str, out_dir: Path) -> tuple[Path, Path]:
    """Write a new `ID.agekey` (mode 600) and `ID.agepub`; never overwrite."""
    check_key_id(key_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity_path = out_dir / f"{key_id}{IDENTITY_SUFFIX}"
    recipient_path = out_dir / f"{key_id}{RECIPIENT_SUFFIX}"
    for path in (identity_path, recipient_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {public}\n{identity}\n"
    write_new_file(identity_path, text.encode("ascii"), mode=0o600)
    write_new_file(recipient_path, f"{public}\n".encode("ascii"), mode=0o644)
    return identity_path, recipient_path


def load_identity(path: Path) -> x25519.Identity:
    """Load an `ID.agekey` identity file (comments allowed), checking its mode."""
    _check_private_mode(path)
    lines = _key_lines(path)
    if len(lines) != 1:
        raise KeyFileError(f"{path} must hold exactly one AGE-SECRET-KEY-1 line")
    try:
        return x25519.Identity.from_str(lines[0])
    except pyrage.IdentityError:
        raise KeyFileError(f"{path} is not an age X25519 identity") from None


def load_recipient(path: Path) -> x25519.Recipient:
    """Load an `ID.agepub` file: one `age1…` line."""
    lines = _key_lines(path)
    if len(lines) != 1:
        raise KeyFileError(f"{path} must hold exactly one age1 recipient line")
    try:
        return x25519.Recipient.from_str(lines[0])
    except pyrage.RecipientError:
        raise KeyFileError(f"{path} is not an age X25519 recipient") from None


def _check_private_mode(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise KeyFileError(
            f"{path} is readable by others (mode {mode & 0o777:o}): "
            f"a private key must be mode 600 or 400 (chmod 600 {path})"
        )


def _key_lines(path: Path) -> list[str]:
    try:
        text = read_key_file(path).decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path} is not an age key file") from None
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _key_id_of(path: Path, suffix: str) -> str:
    if not path.name.endswith(suffix):
        raise KeyFileError(f"{path}: a key file must be named ID{suffix}")
    return check_key_id(path.name[: -len(suffix)])


def classify_decrypt_error(message: str, *, ended_early: bool = False) -> BatchRejected:
    """The reason code for age's refusal of a stream, said by pyrage or by the `age` command.

    `ended_early`: pyrage raised OSError (its reader ran out of input). Never the key, never
    the plaintext: age's messages hold neither.
    """
    if "No matching keys" in message or "no identity matched" in message:
        return BatchRejected(
            RejectReason.WRONG_RECIPIENT,
            "the body does not decrypt with the key its header names: "
            "it was encrypted to another key under that id",
        )
    if (ended_early and "decryption error" not in message.lower()) or (
        "EOF" in message and "failed to decrypt" not in message
    ):
        return BatchRejected(RejectReason.CIPHERTEXT_TRUNCATED, "the encrypted body ends early")
    return BatchRejected(
        RejectReason.CIPHERTEXT_INVALID,
        f"the encrypted body does not authenticate ({message[:80]}): a changed, reordered, "
        "replayed or missing chunk",
    )

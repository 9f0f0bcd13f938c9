"""Ed25519 signing keys and trusted public keys, named by key id (the file's stem)."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batchformat.errors import KeyFileError
from batchformat.models import KEY_ID_PATTERN

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
_KEY_ID_RE = re.compile(KEY_ID_PATTERN)


def check_key_id(key_id: str) -> str:
    """The key id itself if it is valid (letters, digits, `.`, `_`, `-`; at most 64)."""
    if not _KEY_ID_RE.match(key_id):
        raise KeyFileError(
            f"invalid key id {key_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return key_id


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A source's private key: signs batch digests."""

    key_id: str
    private_key: Ed25519PrivateKey

    def sign(self, digest: bytes) -> str:
        """The base64 Ed25519 signature of a batch's raw 32-byte SHA-256 digest."""
        return base64.b64encode(self.private_key.sign(digest)).decode("ascii")

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self.private_key.public_key()


class TrustedKeys(Mapping[str, Ed25519PublicKey]):
    """Public keys a reader accepts, by key id."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] | None = None) -> None:
        self._keys = dict(keys or {})

    def __getitem__(self, key_id: str) -> Ed25519PublicKey:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> TrustedKeys:
        """Trust each `ID.pub` file under its key id; the same id twice is an error."""
        keys: dict[str, Ed25519PublicKey] = {}
        for path in paths:
            key_id, public_key = load_public_key(path)
            if key_id in keys:
                raise KeyFileError(f"key id {key_id!r} is given twice ({path})")
            keys[key_id] = public_key
        return cls(keys)

    @classmethod
    def from_directory(cls, directory: Path) -> TrustedKeys:
        """Trust every `*.pub` file in a folder."""
        return cls.from_files(sorted(directory.glob(f"*{PUBLIC_SUFFIX}")))

    def verify(self, key_id: str, digest: bytes, signature: str) -> bool:
        """Whether `signature` (canonical base64) is key `key_id`'s signature of `digest`."""
        try:
            raw = base64.b64decode(signature, validate=True)
        except binascii.Error:
            return False
        # Several base64 texts decode to the same bytes; only the canonical one is accepted,
        # so that no byte of a signed batch can change unnoticed.
        if base64.b64encode(raw).decode("ascii") != signature:
            return False
        try:
            self._keys[key_id].verify(raw, digest)
        except InvalidSignature:
            return False
        return True


def generate_key_pair(key_id: str, out_dir: Path) -> tuple[Path, Path]:
    """Write a new `ID.key` (PKCS#8 PEM, mode 600) and `ID.pub` (SPKI PEM); never overwrite."""
    check_key_id(key_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / f"{key_id}{PRIVATE_SUFFIX}"
    public_path = out_dir / f"{key_id}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_new_file(private_path, private_pem, mode=0o600)
    write_new_file(public_path, public_pem, mode=0o644)
    return private_path, public_path


def load_signing_key(path: Path) -> SigningKey:
    """Load `ID.key`; the key id is the file's stem."""
    key_id = _key_id_of(path, PRIVATE_SUFFIX)
    pem = read_key_file(path)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return SigningKey(key_id, key)


def load_public_key(path: Path) -> tuple[str, Ed25519PublicKey]:
    """Load `ID.pub`: its key id and the Ed25519 public key."""
    key_id = _key_id_of(path, PUBLIC_SUFFIX)
    pem = read_key_file(path)
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key_id, key


def _key_id_of(path: Path, suffix: str) -> str:
    if path.suffix != suffix:
        raise KeyFileError(f"{path}: a key file must be named ID{suffix}")
    return check_key_id(path.stem)


def read_key_file(path: Path) -> bytes:
    """A key file's bytes; KeyFileError if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc


def write_new_file(path: Path, data: bytes, *, mode: int) -> None:
    """Create a file that must not exist yet, with its mode from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)

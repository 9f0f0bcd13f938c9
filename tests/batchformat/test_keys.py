"""Keys: generation, loading, key ids, and interoperability with OpenSSL."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from batchformat import KeyFileError, SigningKey, TrustedKeys, generate_key_pair, load_signing_key
from batchformat.keys import load_public_key


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_key_pair("site-a", tmp_path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_key_pair("site-a", tmp_path)


@pytest.mark.parametrize("key_id", ["", "../x", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_invalid_key_ids_are_refused(tmp_path: Path, key_id: str) -> None:
    with pytest.raises(KeyFileError, match="invalid key id"):
        generate_key_pair(key_id, tmp_path)


def test_the_key_id_is_the_file_stem(tmp_path: Path) -> None:
    private, public = generate_key_pair("gw-2026.1", tmp_path)
    assert load_signing_key(private).key_id == "gw-2026.1"
    assert load_public_key(public)[0] == "gw-2026.1"


def test_a_public_key_is_not_a_signing_key(tmp_path: Path) -> None:
    _, public = generate_key_pair("k", tmp_path)
    wrong = tmp_path / "k2.key"
    wrong.write_bytes(public.read_bytes())
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_signing_key(wrong)


def test_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_signing_key(tmp_path / "nope.key")


def test_the_same_key_id_twice_is_refused(tmp_path: Path) -> None:
    _, public = generate_key_pair("k", tmp_path / "a")
    copy = tmp_path / "b" / "k.pub"
    copy.parent.mkdir()
    shutil.copy(public, copy)
    with pytest.raises(KeyFileError, match="given twice"):
        TrustedKeys.from_files([public, copy])


def test_openssl_verifies_our_signatures(tmp_path: Path, signing_key: SigningKey) -> None:
    # The format promises a plain Ed25519 signature of the raw digest: a stack without this
    # library can check it with standard tools.
    private, public = generate_key_pair("interop", tmp_path)
    key = load_signing_key(private)
    digest = hashlib.sha256(b"some batch bytes").digest()
    (tmp_path / "digest").write_bytes(digest)
    (tmp_path / "sig").write_bytes(base64.b64decode(key.sign(digest)))
    result = subprocess.run(
        [
            *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin"),
            *("-in", str(tmp_path / "digest"), "-sigfile", str(tmp_path / "sig")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

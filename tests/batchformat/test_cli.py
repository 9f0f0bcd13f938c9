"""The `batchformat` command, run as a real subprocess: outputs and exit codes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchformat import Header, load_signing_key, write_batch

CLI = str(Path(sys.executable).with_name("batchformat"))


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *map(str, args)], capture_output=True, text=True, input=stdin, check=False
    )


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    out = tmp_path / "keys"
    assert run("keygen", "--key-id", "site-a", "--out", out).returncode == 0
    return out


@pytest.fixture
def batch(tmp_path: Path, keys: Path) -> Path:
    records = tmp_path / "records.jsonl"
    records.write_text('{"kind": "echo", "payload": {"x": 1}}\n\n{"kind": "ping"}\n')
    out = tmp_path / "out"
    out.mkdir()
    result = run(
        "pack", records, "--source", "req-net", "--destination", "resp-net", "--seq", "5",
        "--key", keys / "site-a.key", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_keygen_writes_a_signing_and_an_encryption_key_pair(keys: Path) -> None:
    assert sorted(p.name for p in keys.iterdir()) == [
        "site-a.agekey", "site-a.agepub", "site-a.key", "site-a.pub",
    ]  # fmt: skip
    assert (keys / "site-a.key").stat().st_mode & 0o777 == 0o600
    assert (keys / "site-a.agekey").stat().st_mode & 0o777 == 0o600


@pytest.fixture
def sealed(tmp_path: Path, keys: Path) -> Path:
    records = tmp_path / "records.jsonl"
    records.write_text('{"kind":"echo","payload":{"x":1}}\n{"kind":"ping"}\n')
    out = tmp_path / "sealed"
    out.mkdir()
    result = run(
        "pack", records, "--source", "req-net", "--destination", "resp-net", "--seq", "6",
        "--key", keys / "site-a.key", "--encrypt-to", keys / "site-a.agepub", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_an_encrypted_batch_verifies_without_the_private_key(sealed: Path, keys: Path) -> None:
    result = run("verify", sealed, "--trusted", keys / "site-a.pub")
    assert result.returncode == 0, result.stderr
    assert "2 records (encrypted" in result.stdout


def test_verify_with_the_identity_decrypts_and_checks_the_records(sealed: Path, keys: Path) -> None:
    result = run(
        "verify", sealed, "--trusted", keys / "site-a.pub", "--identity", keys / "site-a.agekey"
    )
    assert result.returncode == 0, result.stderr
    assert "ok: " in result.stdout


def test_decrypt_prints_the_records_in_clear(sealed: Path, keys: Path) -> None:
    result = run(
        "decrypt", sealed, "--trusted", keys / "site-a.pub", "--identity", keys / "site-a.agekey"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"kind":"echo","payload":{"x":1}}\n{"kind":"ping"}\n'


def test_decrypt_with_another_key_is_rejected_with_its_reason(
    sealed: Path, keys: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    assert (
        run("keygen", "--key-id", "other", "--kind", "encryption", "--out", other).returncode == 0
    )
    result = run(
        "decrypt", sealed, "--trusted", keys / "site-a.pub", "--identity", other / "other.agekey"
    )
    assert result.returncode == 1
    assert result.stderr.startswith("rejected: unknown_recipient_key:")


def test_inspect_shows_recipients_and_the_announced_count(sealed: Path) -> None:
    result = run("inspect", sealed)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["header"]["format"] == "batchformat/2"
    assert report["header"]["recipients"] == ["site-a"]
    assert report["record_count"] == 2


def test_keygen_will_not_overwrite(keys: Path) -> None:
    result = run("keygen", "--key-id", "site-a", "--out", keys)
    assert result.returncode == 2
    assert "refusing to overwrite" in result.stderr


def test_pack_then_verify(batch: Path, keys: Path) -> None:
    assert batch.name.startswith("req-net__000000000005__")
    result = run("verify", batch, "--trusted", keys / "site-a.pub")
    assert result.returncode == 0, result.stderr
    assert "2 records" in result.stdout


def test_verify_rejects_a_corrupted_batch_with_its_reason(batch: Path, keys: Path) -> None:
    batch.write_bytes(batch.read_bytes().replace(b'"x":1', b'"x":2'))
    result = run("verify", batch, "--trusted", keys / "site-a.pub")
    assert result.returncode == 1
    assert result.stderr.startswith("rejected: digest_mismatch:")


def test_verify_rejects_a_truncated_batch(batch: Path, keys: Path) -> None:
    batch.write_bytes(batch.read_bytes()[:-30])
    result = run("verify", batch, "--trusted", keys / "site-a.pub")
    assert result.returncode == 1
    assert "trailer_missing" in result.stderr


def test_verify_rejects_a_batch_signed_by_an_untrusted_key(
    tmp_path: Path, batch: Path, keys: Path
) -> None:
    other = tmp_path / "other"
    run("keygen", "--key-id", "site-b", "--out", other)
    result = run("verify", batch, "--trusted", other / "site-b.pub")
    assert result.returncode == 1
    assert "unknown_key" in result.stderr


def test_verify_checks_the_destination_when_asked(batch: Path, keys: Path) -> None:
    result = run("verify", batch, "--trusted-dir", keys, "--expect-destination", "somewhere-else")
    assert result.returncode == 1
    assert "destination_mismatch" in result.stderr


def test_inspect_prints_header_count_and_trailer(batch: Path) -> None:
    result = run("inspect", batch)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["header"]["seq"] == 5
    assert report["record_count"] == 2
    assert report["trailer"]["key_id"] == "site-a"
    assert report["problem"] is None


def test_inspect_shows_what_it_can_of_a_broken_batch(batch: Path) -> None:
    batch.write_bytes(batch.read_bytes()[:-30])
    result = run("inspect", batch)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["header"]["seq"] == 5
    assert report["problem"]["code"] == "trailer_missing"


def test_pack_rejects_records_without_a_kind(tmp_path: Path, keys: Path) -> None:
    result = run(
        "pack", "-", "--source", "a", "--destination", "b", "--seq", "1",
        "--key", keys / "site-a.key", "--out", tmp_path,
        stdin='{"kind": "ok"}\n{"no_kind": true}\n',
    )  # fmt: skip
    assert result.returncode == 1
    assert "line 2" in result.stderr
    assert not list(tmp_path.glob("*.jsonl"))
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["verify"],
        ["verify", "missing.jsonl", "--trusted", "missing.pub"],
        ["pack", "-", "--source", "Bad_Name", "--destination", "b", "--seq", "1", "--key", "k.key",
         "--out", "."],
    ],
)  # fmt: skip
def test_usage_errors_exit_with_2(args: list[str], tmp_path: Path, keys: Path) -> None:
    args = [str(keys / "site-a.key") if arg == "k.key" else arg for arg in args]
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_verify_shows_progress_on_a_terminal(tmp_path: Path, keys: Path) -> None:
    header = Header(
        batch_id=uuid.uuid4(),
        source="req-net",
        destination="resp-net",
        seq=1,
        created_at=datetime.now(UTC),
    )
    records = ({"kind": "blob", "data": "x" * 1000} for _ in range(70_000))  # ~70 MB
    batch = write_batch(tmp_path, header, records, load_signing_key(keys / "site-a.key")).path
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(
        [CLI, "verify", str(batch), "--trusted", str(keys / "site-a.pub")],
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    assert b"verify: 100%" in output
    assert b"ok: " in output


def big_records(path: Path) -> Path:
    """Over agestream.CHILD_MIN_BYTES of records: packing them goes through `age`."""
    line = json.dumps({"kind": "echo", "payload": {"text": "x" * 1000}}) + "\n"
    path.write_text(line * 5000)  # 5 MB
    return path


def test_a_big_body_round_trips_through_the_age_command(tmp_path: Path, keys: Path) -> None:
    records = big_records(tmp_path / "big.jsonl")
    result = run(
        "pack", records, "--source", "a", "--destination", "b", "--seq", "1",
        "--key", keys / "site-a.key", "--encrypt-to", keys / "site-a.agepub", "--out", tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    decrypted = run(
        "decrypt", result.stdout.strip(), "--trusted", keys / "site-a.pub",
        "--identity", keys / "site-a.agekey",
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    assert [json.loads(line) for line in decrypted.stdout.splitlines()] == [
        json.loads(line) for line in records.read_text().splitlines()
    ]


def test_without_the_age_command_a_big_pack_says_what_to_install(
    tmp_path: Path, keys: Path
) -> None:
    records = big_records(tmp_path / "big.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [CLI, "pack", str(records), "--source", "a", "--destination", "b", "--seq", "1",
         "--key", str(keys / "site-a.key"), "--encrypt-to", str(keys / "site-a.agepub"),
         "--out", str(out)],
        capture_output=True, text=True, check=False, env={**os.environ, "PATH": "/nonexistent"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "apt-get install age" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []

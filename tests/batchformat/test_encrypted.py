"""batchformat/2: records encrypted with age to the receiver, framing and signature in clear."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import uuid
from pathlib import Path

import msgspec
import pytest

from batchformat import (
    FORMAT_ENCRYPTED,
    BatchParser,
    BatchReader,
    BatchRejected,
    BatchWriter,
    DecryptionKeys,
    KeyFileError,
    RecipientKeys,
    RejectReason,
    SigningKey,
    TrustedKeys,
    agestream,
    generate_encryption_key_pair,
    same_batch,
    write_batch,
)
from servicekit.testing import need_tool
from tests.batchformat.conftest import Echo, TestRecord, echo_records, make_header

AGE_CHUNK = 64 * 1024 + 16  # a full age payload chunk: 64 KiB of plaintext and its tag


@pytest.fixture(autouse=True, params=["in-process", "age-child"])
def cipher_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs both ways: small bodies in process, big ones through a child process."""
    if request.param == "age-child":
        monkeypatch.setattr(agestream, "CHILD_MIN_BYTES", 0)
    return str(request.param)


def age_children() -> list[int]:
    """Our `age` child processes (batchformat's age streams)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
            if parent == os.getpid() and (proc / "comm").read_text() == "age\n":
                pids.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
    return pids


@pytest.fixture(scope="module")
def age_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("age-keys")
    generate_encryption_key_pair("response-net-enc-1", directory)
    generate_encryption_key_pair("other", directory)
    return directory


@pytest.fixture(scope="module")
def recipients(age_keys: Path) -> RecipientKeys:
    return RecipientKeys.from_files([age_keys / "response-net-enc-1.agepub"])


@pytest.fixture(scope="module")
def identities(age_keys: Path) -> DecryptionKeys:
    return DecryptionKeys.from_files([age_keys / "response-net-enc-1.agekey"])


def encrypted(directory: Path, key: SigningKey, to: RecipientKeys, count: int = 3) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_batch(directory, make_header(), echo_records(count), key, encrypt_to=to).path


def receive(path: Path, trusted: TrustedKeys, keys: DecryptionKeys) -> list[object]:
    reader = BatchReader(path, trusted, TestRecord, decryption_keys=keys)
    return list(reader.records())


def reason_receiving(path: Path, trusted: TrustedKeys, keys: DecryptionKeys) -> RejectReason:
    with pytest.raises(BatchRejected) as caught:
        receive(path, trusted, keys)
    return caught.value.reason


def reason_forwarding(path: Path, trusted: TrustedKeys) -> RejectReason:
    with pytest.raises(BatchRejected) as caught:
        BatchReader(path, trusted, decode_records=False).verify()
    return caught.value.reason


def split(path: Path) -> tuple[bytes, bytes, bytes]:
    """Header line, age body, trailer line of a batchformat/2 file."""
    data = path.read_bytes()
    header_end = data.index(b"\n") + 1
    trailer_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    return data[:header_end], data[header_end : trailer_start - 1], data[trailer_start:]


def resign(path: Path, body: bytes, key: SigningKey, record_count: int | None = None) -> None:
    """Write `body` in place of the age body, signed anew: only the cipher can catch it."""
    head, _, trailer_line = split(path)
    signed = head + body + b"\n"
    digest = hashlib.sha256(signed).digest()
    trailer = json.loads(trailer_line)["trailer"]
    trailer.update(sha256=digest.hex(), signature=key.sign(digest))
    if record_count is not None:
        trailer["record_count"] = record_count
    path.write_bytes(
        signed + json.dumps({"trailer": trailer}, separators=(",", ":")).encode() + b"\n"
    )


def test_round_trip_decrypts_every_record(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path, signing_key, recipients, count=5000)
    assert receive(path, trusted, identities) == echo_records(5000)


def test_header_and_trailer_are_clear_records_are_not(
    tmp_path: Path, signing_key: SigningKey, recipients: RecipientKeys
) -> None:
    path = encrypted(tmp_path, signing_key, recipients)
    head, body, trailer_line = split(path)
    header = json.loads(head)
    assert header["format"] == FORMAT_ENCRYPTED
    assert header["recipients"] == ["response-net-enc-1"]
    assert json.loads(trailer_line)["trailer"]["record_count"] == 3
    assert body.startswith(b"age-encryption.org/v1\n")
    assert b"echo" not in body
    assert b"request_id" not in body


def test_the_agent_verifies_without_any_decryption_key(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, recipients: RecipientKeys
) -> None:
    path = encrypted(tmp_path, signing_key, recipients, count=2000)
    parser = BatchParser(trusted, decode_records=False)
    data = path.read_bytes()
    for start in range(0, len(data), 7777):  # pieces of any size
        parser.feed(data[start : start + 7777])
    verified = parser.finish()
    assert verified.encrypted
    assert verified.signature_checked
    assert verified.record_count == 2000


def test_the_age_command_decrypts_the_body_with_the_documented_recipe(
    tmp_path: Path, signing_key: SigningKey, recipients: RecipientKeys, age_keys: Path
) -> None:
    need_tool("age", "age")
    path = encrypted(tmp_path, signing_key, recipients, count=300)
    # The recipe of docs/batch-format.md §2.2, as an operator types it.
    recipe = (
        'H=$(head -n 1 "$B" | wc -c); T=$(tail -n 1 "$B" | wc -c); '
        'tail -c +$((H + 1)) "$B" | head -c -$((T + 1)) | age -d -i "$K"'
    )
    env = {**os.environ, "B": str(path), "K": str(age_keys / "response-net-enc-1.agekey")}
    out = subprocess.run(["sh", "-c", recipe], env=env, capture_output=True, check=True)
    assert out.stdout == msgspec.json.Encoder(order="deterministic").encode_lines(echo_records(300))


def test_truncation_is_trailer_missing(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path, signing_key, recipients, count=3000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert reason_forwarding(path, trusted) is RejectReason.TRAILER_MISSING
    assert reason_receiving(path, trusted, identities) is RejectReason.TRAILER_MISSING


def test_a_flipped_byte_is_a_digest_mismatch_for_the_agent_and_the_receiver(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path, signing_key, recipients, count=3000)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert reason_forwarding(path, trusted) is RejectReason.DIGEST_MISMATCH
    assert reason_receiving(path, trusted, identities) is RejectReason.DIGEST_MISMATCH


def test_a_flipped_byte_under_a_valid_signature_fails_the_cipher(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path, signing_key, recipients, count=3000)
    body = bytearray(split(path)[1])
    body[-100] ^= 0x01
    resign(path, bytes(body), signing_key)
    assert reason_receiving(path, trusted, identities) is RejectReason.CIPHERTEXT_INVALID


def test_a_replayed_chunk_under_a_valid_signature_fails_the_cipher(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path, signing_key, recipients, count=5000)
    body = split(path)[1]
    start = body.index(b"\n---") + 1
    start = body.index(b"\n", start) + 1 + 16  # after the MAC line and the payload nonce
    first = body[start : start + AGE_CHUNK]
    replayed = body[: start + AGE_CHUNK] + first + body[start + 2 * AGE_CHUNK :]
    resign(path, replayed, signing_key)
    assert reason_receiving(path, trusted, identities) is RejectReason.CIPHERTEXT_INVALID


def test_a_cut_short_body_under_a_valid_signature_is_ciphertext_truncated(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path, signing_key, recipients, count=5000)
    body = split(path)[1]
    start = body.index(b"\n---") + 1
    start = body.index(b"\n", start) + 1 + 16
    resign(path, body[: start + 2 * AGE_CHUNK], signing_key)
    assert reason_receiving(path, trusted, identities) is RejectReason.CIPHERTEXT_TRUNCATED


def test_a_batch_for_a_key_the_receiver_does_not_hold_is_unknown_recipient_key(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    age_keys: Path, identities: DecryptionKeys,
) -> None:  # fmt: skip
    other = RecipientKeys.from_files([age_keys / "other.agepub"])
    path = encrypted(tmp_path, signing_key, other)
    assert reason_receiving(path, trusted, identities) is RejectReason.UNKNOWN_RECIPIENT_KEY
    assert reason_receiving(path, trusted, DecryptionKeys()) is RejectReason.UNKNOWN_RECIPIENT_KEY


def test_a_body_for_another_key_under_a_held_id_is_wrong_recipient(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    age_keys: Path, identities: DecryptionKeys,
) -> None:  # fmt: skip
    impostor = RecipientKeys(
        {"response-net-enc-1": RecipientKeys.from_files([age_keys / "other.agepub"])["other"]}
    )
    path = encrypted(tmp_path, signing_key, impostor)
    assert reason_receiving(path, trusted, identities) is RejectReason.WRONG_RECIPIENT


def test_a_forgery_is_reported_as_such_before_any_cipher_problem(
    tmp_path: Path, intruder_key: SigningKey, trusted: TrustedKeys,
    age_keys: Path, identities: DecryptionKeys,
) -> None:  # fmt: skip
    other = RecipientKeys.from_files([age_keys / "other.agepub"])
    path = encrypted(tmp_path, intruder_key, other)
    assert reason_receiving(path, trusted, identities) is RejectReason.UNKNOWN_KEY


def test_the_record_count_is_checked_after_decryption(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path, signing_key, recipients)
    resign(path, split(path)[1], signing_key, record_count=4)
    assert reason_receiving(path, trusted, identities) is RejectReason.RECORD_COUNT_MISMATCH


def test_a_receiver_may_refuse_unencrypted_batches(
    make_batch: object, tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    path = write_batch(tmp_path, make_header(), echo_records(2), signing_key).path
    with pytest.raises(BatchRejected) as caught:
        BatchReader(path, trusted, TestRecord, accept_unencrypted=False).verify()
    assert caught.value.reason is RejectReason.UNENCRYPTED_REFUSED
    assert len(list(BatchReader(path, trusted, TestRecord).records())) == 2


def test_an_identity_readable_by_others_is_refused(tmp_path: Path) -> None:
    identity, _ = generate_encryption_key_pair("k1", tmp_path)
    assert identity.stat().st_mode & 0o777 == 0o600
    identity.chmod(0o640)
    with pytest.raises(KeyFileError, match="mode 640"):
        DecryptionKeys.from_directory(tmp_path)


def test_the_age_command_reads_our_identity_files(tmp_path: Path) -> None:
    identity, recipient = generate_encryption_key_pair("k1", tmp_path)
    out = subprocess.run(
        ["age-keygen", "-y", str(identity)], capture_output=True, text=True, check=True
    )
    assert out.stdout == recipient.read_text()


def test_decryption_keys_never_show_the_secret(identities: DecryptionKeys, age_keys: Path) -> None:
    secret = (age_keys / "response-net-enc-1.agekey").read_text().splitlines()[-1]
    assert secret.startswith("AGE-SECRET-KEY-1")
    assert secret not in repr(identities)
    assert secret not in str(identities)


def test_a_record_over_the_line_limit_is_line_too_long_after_decryption(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    records = [*echo_records(2000), Echo(uuid.UUID(int=1), {"pad": "x" * 600}), *echo_records(9)]
    path = write_batch(tmp_path, make_header(), records, signing_key, encrypt_to=recipients).path
    reader = BatchReader(path, trusted, TestRecord, decryption_keys=identities, max_line_bytes=500)
    with pytest.raises(BatchRejected) as caught:
        list(reader.records())
    assert caught.value.reason is RejectReason.LINE_TOO_LONG
    assert caught.value.line == 2002  # the header is line 1


def test_two_renderings_of_one_encrypted_batch_are_the_same_batch(
    tmp_path: Path, signing_key: SigningKey, intruder_key: SigningKey, trusted: TrustedKeys,
    recipients: RecipientKeys, age_keys: Path,
) -> None:  # fmt: skip
    header = make_header()
    for folder in "abcd":
        (tmp_path / folder).mkdir()
    first = write_batch(
        tmp_path / "a", header, echo_records(50), signing_key, encrypt_to=recipients
    )
    both = RecipientKeys.from_directory(age_keys)  # a rotation changed the recipients
    again = write_batch(tmp_path / "b", header, echo_records(50), signing_key, encrypt_to=both)
    assert first.path.read_bytes() != again.path.read_bytes()
    assert first.content_sha256 == again.content_sha256
    assert same_batch(again.path, first.path, trusted)
    forged = write_batch(tmp_path / "c", header, echo_records(50), intruder_key, encrypt_to=both)
    assert not same_batch(forged.path, first.path, trusted)
    other = write_batch(tmp_path / "d", header, echo_records(51), signing_key, encrypt_to=both)
    assert not same_batch(other.path, first.path, trusted)


def test_the_age_child_gets_the_identity_only_through_its_pipe(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, cipher_path: str,
    recipients: RecipientKeys, identities: DecryptionKeys, age_keys: Path,
) -> None:  # fmt: skip
    if cipher_path != "age-child":
        return  # only the child path has a process to look at
    secret = (age_keys / "response-net-enc-1.agekey").read_text().splitlines()[-1].encode()
    path = encrypted(tmp_path, signing_key, recipients, count=20000)
    parser = BatchParser(trusted, TestRecord, decryption_keys=identities)
    data = path.read_bytes()
    records = list(parser.feed(data[: len(data) // 2]))  # the child waits for the rest
    (child,) = age_children()
    for what in ("cmdline", "environ"):
        assert secret not in Path(f"/proc/{child}/{what}").read_bytes()
    records += parser.feed(data[len(data) // 2 :])
    records += parser.end()
    assert parser.finish().record_count == len(records) == 20000


def test_an_abandoned_stream_leaves_no_age_process(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, cipher_path: str,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    path = encrypted(tmp_path / "whole", signing_key, recipients, count=20000)
    parser = BatchParser(trusted, TestRecord, decryption_keys=identities)
    data = path.read_bytes()
    list(parser.feed(data[: len(data) // 2]))
    parser.close()  # a reader that gives up half way
    writer = BatchWriter(tmp_path, make_header(), signing_key, encrypt_to=recipients)
    writer.write_many(echo_records(20000))
    writer.abort()  # what leaving its block with an exception does
    assert age_children() == []
    assert list(tmp_path.iterdir()) == [tmp_path / "whole"]  # no partial file either


def test_a_killed_age_child_fails_the_read_without_rejecting_the_batch(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, cipher_path: str,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    if cipher_path != "age-child":
        return  # only the child path has a process to kill
    path = encrypted(tmp_path, signing_key, recipients, count=20000)
    data = path.read_bytes()
    parser = BatchParser(trusted, TestRecord, decryption_keys=identities)
    list(parser.feed(data[: len(data) // 2]))
    (child,) = age_children()
    os.kill(child, signal.SIGKILL)  # the OOM killer, say: nothing the batch did
    list(parser.feed(data[len(data) // 2 :]))
    with pytest.raises(agestream.AgeProcessError, match="killed by signal 9"):
        list(parser.end())
    assert receive(path, trusted, identities) == echo_records(20000)  # the next try reads it


def test_a_killed_age_child_fails_the_write_and_leaves_no_file(
    tmp_path: Path, signing_key: SigningKey, cipher_path: str, recipients: RecipientKeys
) -> None:
    if cipher_path != "age-child":
        return
    writer = BatchWriter(tmp_path, make_header(), signing_key, encrypt_to=recipients)
    writer.write_many(echo_records(50000))  # over a MiB: the writer has fed the child
    (child,) = age_children()
    os.kill(child, signal.SIGKILL)
    with pytest.raises(agestream.AgeProcessError, match="killed by signal 9"):
        writer.publish()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_the_age_child_works_with_file_descriptors_above_1024(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, cipher_path: str,
    recipients: RecipientKeys, identities: DecryptionKeys,
) -> None:  # fmt: skip
    if cipher_path != "age-child":
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # a busy service's sockets
    try:
        path = encrypted(tmp_path, signing_key, recipients, count=50000)
        assert receive(path, trusted, identities) == echo_records(50000)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_without_the_age_command_a_big_body_fails_saying_what_to_install(
    tmp_path: Path, signing_key: SigningKey, cipher_path: str, recipients: RecipientKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if cipher_path != "age-child":
        return  # small bodies need no command
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    writer = BatchWriter(tmp_path, make_header(), signing_key, encrypt_to=recipients)
    with pytest.raises(agestream.AgeProcessError, match=r"apt-get install age"):
        writer.write_many(echo_records(50000))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_age_that_cannot_read_its_keys_fails_without_rejecting_the_batch(
    cipher_path: str,
) -> None:
    if cipher_path != "age-child":
        return
    child = agestream._AgeChild(["--decrypt"], lambda _: None, b"not an identity\n")
    with pytest.raises(agestream.AgeProcessError, match="exited with status 1: reading"):
        child.end()

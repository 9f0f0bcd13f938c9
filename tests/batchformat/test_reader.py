"""Verification: every rejection reason of the format, and records decoded into a union."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from batchformat import (
    BatchParser,
    BatchReader,
    BatchRejected,
    Expectations,
    RejectReason,
    SigningKey,
    TrustedKeys,
    verify_batch_file,
)
from servicekit.testing import imported_modules
from tests.batchformat.conftest import Ack, Echo, MakeBatch, TestRecord, echo_records, make_header
from tests.batchformat.rawbatch import header_bytes, signed_file


def reason_of(path: Path, trusted: TrustedKeys, **options: object) -> RejectReason:
    with pytest.raises(BatchRejected) as caught:
        BatchReader(path, trusted, TestRecord, **options).verify()  # type: ignore[arg-type]
    return caught.value.reason


def rewrite(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_records_come_back_equal_and_typed(make_batch: MakeBatch, trusted: TrustedKeys) -> None:
    records = [*echo_records(50), Ack(uuid.uuid4())]
    reader = BatchReader(make_batch(records, seq=7), trusted, TestRecord)
    assert list(reader.records()) == records
    assert reader.result is not None
    assert reader.result.record_count == 51
    assert reader.result.header.seq == 7
    assert reader.result.signature_checked


def test_an_empty_batch_is_valid(make_batch: MakeBatch, trusted: TrustedKeys) -> None:
    assert verify_batch_file(make_batch([]), trusted).record_count == 0


def test_result_is_unset_until_the_trailer_checks_out(
    make_batch: MakeBatch, trusted: TrustedKeys
) -> None:
    reader = BatchReader(make_batch(echo_records(3)), trusted, TestRecord)
    records = reader.records()
    next(records)
    assert reader.result is None
    assert reader.header is not None


def test_empty_file_is_header_missing(make_batch: MakeBatch, trusted: TrustedKeys) -> None:
    path = rewrite(make_batch(), b"")
    assert reason_of(path, trusted) is RejectReason.HEADER_MISSING


def test_malformed_header_is_header_invalid(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    header = make_header()
    broken = header_bytes(header).replace(b'"seq":1', b'"seq":"one"')
    path = signed_file(tmp_path, header, [], signing_key, head=broken)
    assert reason_of(path, trusted) is RejectReason.HEADER_INVALID


def test_a_record_where_the_header_belongs_is_header_invalid(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    path = signed_file(tmp_path, make_header(), [], signing_key, head=b'{"kind":"echo"}\n')
    assert reason_of(path, trusted) is RejectReason.HEADER_INVALID


def test_another_format_is_unsupported(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    header = make_header()
    head = header_bytes(header).replace(b"batchformat/1", b"batchformat/3")
    path = signed_file(tmp_path, header, [], signing_key, head=head)
    assert reason_of(path, trusted) is RejectReason.UNSUPPORTED_FORMAT


def test_missing_trailer_is_reported_as_truncation(
    make_batch: MakeBatch, trusted: TrustedKeys
) -> None:
    path = make_batch(echo_records(3))
    lines = path.read_bytes().splitlines(keepends=True)
    rewrite(path, b"".join(lines[:-1]))
    assert reason_of(path, trusted) is RejectReason.TRAILER_MISSING


def test_a_cut_in_the_middle_of_a_line_is_truncation(
    make_batch: MakeBatch, trusted: TrustedKeys
) -> None:
    path = make_batch(echo_records(3))
    rewrite(path, path.read_bytes()[:-10])
    assert reason_of(path, trusted) is RejectReason.TRAILER_MISSING


def test_a_header_alone_is_truncation(make_batch: MakeBatch, trusted: TrustedKeys) -> None:
    path = make_batch(echo_records(3))
    rewrite(path, path.read_bytes().splitlines(keepends=True)[0])
    assert reason_of(path, trusted) is RejectReason.TRAILER_MISSING


def test_a_malformed_trailer_is_trailer_invalid(
    make_batch: MakeBatch, trusted: TrustedKeys
) -> None:
    path = make_batch(echo_records(2))
    data = path.read_bytes().replace(b'"record_count":2', b'"record_count":"2"')
    assert reason_of(rewrite(path, data), trusted) is RejectReason.TRAILER_INVALID


def test_a_wrong_count_is_record_count_mismatch(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    lines = [json.dumps({"kind": "ack", "batch_id": str(uuid.uuid4())}).encode() + b"\n"]
    path = signed_file(tmp_path, make_header(), lines, signing_key, record_count=2)
    assert reason_of(path, trusted) is RejectReason.RECORD_COUNT_MISMATCH


def test_a_changed_record_is_digest_mismatch(make_batch: MakeBatch, trusted: TrustedKeys) -> None:
    path = make_batch(echo_records(3))
    data = path.read_bytes().replace(b'"n":1', b'"n":9')
    assert reason_of(rewrite(path, data), trusted) is RejectReason.DIGEST_MISMATCH


def test_a_key_nobody_trusts_is_unknown_key(
    make_batch: MakeBatch, trusted: TrustedKeys, intruder_key: SigningKey
) -> None:
    path = make_batch(echo_records(3), key=intruder_key)
    assert reason_of(path, trusted) is RejectReason.UNKNOWN_KEY


def test_a_signature_by_another_key_under_a_trusted_id_is_bad_signature(
    tmp_path: Path, make_batch: MakeBatch, trusted: TrustedKeys, intruder_key: SigningKey
) -> None:
    impostor = SigningKey("request-net-1", intruder_key.private_key)
    path = make_batch(echo_records(3), key=impostor)
    assert reason_of(path, trusted) is RejectReason.BAD_SIGNATURE


def test_a_non_canonical_base64_signature_is_bad_signature(
    make_batch: MakeBatch, trusted: TrustedKeys
) -> None:
    path = make_batch(echo_records(1))
    head, trailer_line = path.read_bytes().rsplit(b"\n", 2)[0:2]
    trailer = json.loads(trailer_line)
    signature: str = trailer["trailer"]["signature"]
    # The character before the padding carries unused bits: flipping one of them keeps the
    # decoded bytes but changes the text, and must not pass.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = signature.rstrip("=")[-1]
    twin = alphabet[alphabet.index(last) ^ 1]
    trailer["trailer"]["signature"] = signature.replace(last + "==", twin + "==")
    new_trailer = json.dumps(trailer, separators=(",", ":")).encode()
    rewrite(path, head + b"\n" + new_trailer + b"\n")
    assert reason_of(path, trusted) is RejectReason.BAD_SIGNATURE


def test_a_line_over_the_limit_is_line_too_long(
    make_batch: MakeBatch, trusted: TrustedKeys
) -> None:
    path = make_batch([Echo(uuid.uuid4(), {"blob": "x" * 5000})])
    assert reason_of(path, trusted, max_line_bytes=4096) is RejectReason.LINE_TOO_LONG
    assert verify_batch_file(path, trusted, max_line_bytes=8192).record_count == 1


def test_an_endless_line_is_rejected_without_reading_it_all(
    tmp_path: Path, trusted: TrustedKeys
) -> None:
    parser = BatchParser(trusted, max_line_bytes=1024)
    for _ in range(10):
        parser.feed(b"y" * 100)
    with pytest.raises(BatchRejected) as caught:
        parser.feed(b"y" * 100)
    assert caught.value.reason is RejectReason.LINE_TOO_LONG


def test_invalid_utf8_is_reported_as_such(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    lines = [b'{"kind":"echo","request_id":"x","payload":{"t":"\xff"}}\n']
    path = signed_file(tmp_path, make_header(), lines, signing_key)
    with pytest.raises(BatchRejected) as caught:
        BatchReader(path, trusted, TestRecord).verify()
    assert caught.value.reason is RejectReason.INVALID_UTF8
    assert caught.value.line == 2


@pytest.mark.parametrize("line", [b"{not json}\n", b"\n", b"   \n", b"[1,2]\n"])
def test_lines_that_are_not_json_objects_are_rejected(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys, line: bytes
) -> None:
    good = b'{"kind":"ack","batch_id":"' + str(uuid.uuid4()).encode() + b'"}\n'
    path = signed_file(tmp_path, make_header(), [good, good, line, good], signing_key)
    with pytest.raises(BatchRejected) as caught:
        BatchReader(path, trusted, TestRecord).verify()
    expected = RejectReason.RECORD_INVALID if line.startswith(b"[") else RejectReason.INVALID_JSON
    assert caught.value.reason is expected
    assert caught.value.line == 4


def test_a_record_of_an_unknown_kind_is_record_invalid(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    lines = [b'{"kind":"drop_tables"}\n']
    path = signed_file(tmp_path, make_header(), lines, signing_key)
    assert reason_of(path, trusted) is RejectReason.RECORD_INVALID


def test_framing_only_mode_does_not_decode_records(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    lines = [b'{"kind":"anything","at":"all"}\n', b"[1]\n"]
    path = signed_file(tmp_path, make_header(), lines, signing_key)
    result = BatchReader(path, trusted, decode_records=False).verify()
    assert result.record_count == 2


def test_framing_only_mode_still_rejects_blank_lines(
    tmp_path: Path, signing_key: SigningKey, trusted: TrustedKeys
) -> None:
    lines = [b'{"kind":"a"}\n'] * 3 + [b"\n"] + [b'{"kind":"a"}\n'] * 3
    path = signed_file(tmp_path, make_header(), lines, signing_key)
    with pytest.raises(BatchRejected) as caught:
        BatchReader(path, trusted, decode_records=False).verify()
    assert caught.value.reason is RejectReason.INVALID_JSON
    assert caught.value.line == 5


def test_a_renamed_file_is_name_mismatch(make_batch: MakeBatch, trusted: TrustedKeys) -> None:
    path = make_batch(echo_records(1), seq=3)
    renamed = path.with_name(path.name.replace("__000000000003__", "__000000000004__"))
    path.rename(renamed)
    assert reason_of(renamed, trusted) is RejectReason.NAME_MISMATCH
    assert verify_batch_file(renamed, trusted, check_name=False).header.seq == 3


def test_a_batch_for_another_destination_is_rejected(
    make_batch: MakeBatch, trusted: TrustedKeys
) -> None:
    path = make_batch(echo_records(1))
    expect = Expectations(destination="somewhere-else")
    assert reason_of(path, trusted, expect=expect) is RejectReason.DESTINATION_MISMATCH
    expect = Expectations(source="gateway-b")
    assert reason_of(path, trusted, expect=expect) is RejectReason.SOURCE_MISMATCH


def test_a_symlink_is_never_followed(make_batch: MakeBatch, trusted: TrustedKeys) -> None:
    path = make_batch(echo_records(1))
    link = path.with_name(path.name.replace("__000000000001__", "__000000000002__"))
    link.symlink_to(path)
    assert reason_of(link, trusted, check_name=False) is RejectReason.NOT_A_REGULAR_FILE


@pytest.mark.parametrize("piece", [1, 7, 64, 4096, 1 << 20])
def test_feeding_in_any_piece_size_gives_the_same_records(
    make_batch: MakeBatch, trusted: TrustedKeys, piece: int
) -> None:
    records = echo_records(200)
    data = make_batch(records).read_bytes()
    parser = BatchParser(trusted, TestRecord)
    decoded: list[TestRecord] = []
    for start in range(0, len(data), piece):
        decoded += parser.feed(data[start : start + piece])
    assert parser.finish().record_count == 200
    assert decoded == records


def test_the_push_parser_knows_nothing_of_files_and_the_old_import_path_still_works() -> None:
    import batchformat.body
    import batchformat.lines
    import batchformat.parser
    import batchformat.reader

    for module in (batchformat.parser, batchformat.lines, batchformat.body):
        imports = imported_modules(Path(module.__file__ or ""))
        assert not imports & {"pathlib", "batchformat.fsops", "batchformat.reader"}, imports
    for name in ("BatchParser", "Expectations", "VerifiedBatch", "DEFAULT_MAX_LINE_BYTES"):
        assert getattr(batchformat.reader, name) is getattr(batchformat.parser, name)

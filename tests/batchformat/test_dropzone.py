"""Drop zones: strict listing, race-free claims across processes, quarantine with a reason."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from batchformat import BatchName, BatchRejected, DropZone, IgnoredKind, RejectReason
from batchformat.fsops import UnsafeTargetFolder
from tests.batchformat.conftest import MakeBatch, echo_records


def test_batch_names_are_parsed_strictly() -> None:
    batch_id = uuid.uuid4()
    good = f"request-net__000000000042__{batch_id}.jsonl"
    assert BatchName.parse(good) == BatchName("request-net", 42, batch_id)
    assert BatchName("request-net", 42, batch_id).file_name == good
    for bad in [
        f"request-net__42__{batch_id}.jsonl",
        f"Request-Net__000000000042__{batch_id}.jsonl",
        f"request-net__000000000042__{str(batch_id).upper()}.jsonl",
        f"request-net__000000000042__{batch_id}.jsonl.part",
        f"../request-net__000000000042__{batch_id}.jsonl",
        f"request_net__000000000042__{batch_id}.jsonl",
        f"request-net__000000000042__{batch_id}.jsonl\n",
        f"request-net__000000000042__{batch_id}.json",
    ]:
        assert BatchName.parse(bad) is None, bad


def test_scan_lists_batches_in_seq_order_and_reports_the_rest(
    tmp_path: Path, make_batch: MakeBatch
) -> None:
    for seq in (3, 1, 2):
        make_batch(echo_records(1), seq=seq)
    first = next(tmp_path.glob("*__000000000001__*"))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / f".{first.name}.part").write_text("half")
    (tmp_path / "quarantine").mkdir()
    os.symlink(first, tmp_path / first.name.replace("000000000001", "000000000009"))
    os.mkfifo(tmp_path / first.name.replace("000000000001", "000000000008"))

    scan = DropZone(tmp_path).scan()

    assert [batch.name.seq for batch in scan.ready] == [1, 2, 3]
    kinds = {entry.kind for entry in scan.ignored}
    assert kinds == {
        IgnoredKind.UNRECOGNISED_NAME,
        IgnoredKind.HIDDEN,
        IgnoredKind.IN_PROGRESS,
        IgnoredKind.DIRECTORY,
        IgnoredKind.SYMLINK,
        IgnoredKind.NOT_A_FILE,
    }


def test_a_claim_moves_the_file_once(tmp_path: Path, make_batch: MakeBatch) -> None:
    zone = DropZone(tmp_path / "outbox")
    make_batch(echo_records(1), directory=zone.path)
    into = tmp_path / "in-flight"
    into.mkdir()
    (batch,) = zone.scan().ready
    claimed = zone.claim(batch, into)
    assert claimed == into / batch.name.file_name
    assert claimed.exists()
    assert zone.claim(batch, into) is None


def test_a_claim_never_replaces_a_batch_already_in_flight(
    tmp_path: Path, make_batch: MakeBatch
) -> None:
    zone = DropZone(tmp_path / "outbox")
    path = make_batch(echo_records(1), directory=zone.path)
    into = tmp_path / "in-flight"
    into.mkdir()
    (into / path.name).write_bytes(b"the earlier copy")
    (batch,) = zone.scan().ready
    assert zone.claim(batch, into) is None
    assert (into / path.name).read_bytes() == b"the earlier copy"
    assert path.exists()


CLAIMER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from batchformat import DropZone
    zone, into = DropZone(Path(sys.argv[1])), Path(sys.argv[2])
    into.mkdir(exist_ok=True)
    claimed = []
    while ready := zone.scan().ready:
        for batch in ready:
            if zone.claim(batch, into) is not None:
                claimed.append(batch.name.file_name)
    print(json.dumps(claimed))
    """
)


def test_competing_processes_never_claim_the_same_file(
    tmp_path: Path, make_batch: MakeBatch
) -> None:
    source = tmp_path / "outbox"
    names = {make_batch([], seq=seq, directory=source).name for seq in range(400)}
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(source), str(tmp_path / f"claimed-{i}")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [json.loads(claimer.communicate(timeout=60)[0]) for claimer in claimers]

    every_claim = [name for result in results for name in result]
    assert sorted(every_claim) == sorted(names)  # each file claimed exactly once
    for i, result in enumerate(results):
        assert sorted(p.name for p in (tmp_path / f"claimed-{i}").iterdir()) == sorted(result)
    assert list(source.iterdir()) == []


def test_quarantine_keeps_the_file_and_says_why(tmp_path: Path, make_batch: MakeBatch) -> None:
    zone = DropZone(tmp_path)
    path = make_batch(echo_records(1))
    rejection = BatchRejected(RejectReason.DIGEST_MISMATCH, "content changed", line=None)

    moved = zone.quarantine(path, rejection)

    assert moved == tmp_path / "quarantine" / path.name
    assert not path.exists()
    reason = json.loads((tmp_path / "quarantine" / f"{path.name}.reason.json").read_bytes())
    assert reason["code"] == "digest_mismatch"
    assert reason["message"] == "content changed"
    assert reason["file"] == path.name


def test_the_same_name_quarantined_twice_keeps_both(tmp_path: Path, make_batch: MakeBatch) -> None:
    zone = DropZone(tmp_path)
    rejection = BatchRejected(RejectReason.BAD_SIGNATURE, "forged")
    path = make_batch(echo_records(1))
    content = path.read_bytes()
    first = zone.quarantine(path, rejection)
    path.write_bytes(b"a second, different file of that name")
    second = zone.quarantine(path, rejection)
    assert first != second
    assert first.read_bytes() == content
    assert second.with_name(second.name + ".reason.json").exists()


def test_a_reason_file_left_half_written_by_a_killed_process_is_cleaned_up(
    tmp_path: Path, make_batch: MakeBatch
) -> None:
    zone = DropZone(tmp_path)
    path = make_batch(echo_records(1))
    zone.quarantine_path.mkdir()
    stale = zone.quarantine_path / f".{path.name}.reason.json.99999.part"
    stale.write_bytes(b'{"file": "half')
    zone.quarantine(path, BatchRejected(RejectReason.BAD_SIGNATURE, "forged"))
    assert sorted(p.name for p in zone.quarantine_path.iterdir()) == [
        path.name,
        f"{path.name}.reason.json",
    ]


def test_batch_files_and_reasons_are_private_whatever_the_umask(
    tmp_path: Path, make_batch: MakeBatch
) -> None:
    previous = os.umask(0o000)
    try:
        path = make_batch(echo_records(1))
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        rejection = BatchRejected(RejectReason.DIGEST_MISMATCH, "content changed", line=None)
        moved = DropZone(tmp_path).quarantine(path, rejection)
    finally:
        os.umask(previous)
    reason = moved.with_name(f"{moved.name}.reason.json")
    assert stat.S_IMODE(moved.stat().st_mode) == 0o640
    assert stat.S_IMODE(reason.stat().st_mode) == 0o640


def test_a_symlinked_quarantine_is_refused_and_nothing_goes_through_it(
    tmp_path: Path, make_batch: MakeBatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    zone_dir = tmp_path / "zone"
    zone_dir.mkdir()
    (zone_dir / "quarantine").symlink_to(elsewhere)
    path = make_batch(echo_records(1), directory=zone_dir)
    rejection = BatchRejected(RejectReason.DIGEST_MISMATCH, "content changed", line=None)

    with pytest.raises(UnsafeTargetFolder, match="unsafe_target_folder"):
        DropZone(zone_dir).quarantine(path, rejection)

    assert path.exists()
    assert list(elsewhere.iterdir()) == []

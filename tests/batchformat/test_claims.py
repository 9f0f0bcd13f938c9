"""Claim folders: one locked folder per importing process; a dead process's batches adopted."""

from __future__ import annotations

from pathlib import Path

from batchformat.claims import LOCK_NAME, ClaimFolder

NAME = "request-net__000000000001__00000000-0000-0000-0000-000000000001.jsonl"


def test_a_claim_folder_is_locked_while_open_and_removed_when_closed_empty(
    tmp_path: Path,
) -> None:
    claims = ClaimFolder(tmp_path / ".importing", "host-1")
    claims.open()
    assert claims.is_open
    assert (claims.path / LOCK_NAME).exists()
    assert [p.name for p in (tmp_path / ".importing").iterdir()] == [claims.path.name]
    claims.close()
    assert not claims.path.exists()


def test_a_claim_folder_with_batches_left_survives_close(tmp_path: Path) -> None:
    claims = ClaimFolder(tmp_path, "host-1")
    claims.open()
    (claims.path / NAME).write_text("x")
    claims.close()
    assert (claims.path / NAME).exists()


def test_a_live_processs_folder_is_never_adopted(tmp_path: Path) -> None:
    live, other = ClaimFolder(tmp_path, "live"), ClaimFolder(tmp_path, "other")
    live.open()
    other.open()
    (live.path / NAME).write_text("x")
    assert other.adopt_orphans() == []
    assert (live.path / NAME).exists()


def test_a_dead_processs_batches_are_adopted_and_its_folder_removed(tmp_path: Path) -> None:
    dead = ClaimFolder(tmp_path, "dead")
    dead.open()
    (dead.path / NAME).write_text("x")
    (dead.path / "notes.txt").write_text("not a batch")
    dead.close()  # as the kernel does when the process dies: the lock is gone
    heir = ClaimFolder(tmp_path, "heir")
    heir.open()
    assert heir.adopt_orphans() == [heir.path / NAME]
    assert heir.batches() == [heir.path / NAME]
    assert dead.path.exists()  # it still holds something that is not a batch


def test_a_folder_being_created_is_hidden_until_locked(tmp_path: Path) -> None:
    half_made = tmp_path / ".host-2-12345678"
    half_made.mkdir()
    (half_made / NAME).write_text("x")
    heir = ClaimFolder(tmp_path, "heir")
    heir.open()
    assert heir.adopt_orphans() == []

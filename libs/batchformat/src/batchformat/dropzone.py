"""Drop zones: folders where batches appear by atomic rename and are claimed the same way."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final

import msgspec

from batchformat.errors import BatchRejected, UnsafeFolder
from batchformat.fsops import BATCH_FILE_MODE, fsync_dir, open_target_dir, rename_noreplace
from batchformat.models import BatchName

QUARANTINE_DIR: Final = "quarantine"
REASON_SUFFIX: Final = ".reason.json"
PART_SUFFIX: Final = ".part"


class IgnoredKind(StrEnum):
    """Why an entry of a drop zone is not a ready batch; such entries are never followed."""

    IN_PROGRESS = "in_progress"  # `.{name}.part`, still being written
    HIDDEN = "hidden"
    UNRECOGNISED_NAME = "unrecognised_name"
    SYMLINK = "symlink"
    DIRECTORY = "directory"
    NOT_A_FILE = "not_a_file"  # fifo, socket, device


@dataclass(frozen=True, slots=True)
class ReadyBatch:
    """A visible, well-named regular file in a drop zone."""

    name: BatchName
    path: Path
    size_bytes: int
    arrived_at: float  # inode change time: set by the rename that published it here


@dataclass(frozen=True, slots=True)
class IgnoredEntry:
    """Something in a drop zone that is not a batch, and why."""

    name: str
    kind: IgnoredKind


@dataclass(frozen=True, slots=True)
class Scan:
    """One look at a drop zone: batches in (source, seq) order, and everything else."""

    ready: list[ReadyBatch]
    ignored: list[IgnoredEntry]


class QuarantineReason(msgspec.Struct, frozen=True):
    """The content of a `.reason.json` file next to a quarantined batch."""

    file: str
    code: str
    message: str
    line: int | None
    quarantined_at: datetime
    from_folder: str


class DropZone:
    """One drop-zone folder, with its `quarantine/` subfolder."""

    def __init__(self, path: Path, quarantine_path: Path | None = None) -> None:
        self.path = path
        self.quarantine_path = quarantine_path or path / QUARANTINE_DIR

    def scan(self) -> Scan:
        """List ready batches sorted by (source, seq, batch id) and report everything else."""
        ready: list[ReadyBatch] = []
        ignored: list[IgnoredEntry] = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                name = BatchName.parse(entry.name)
                kind = _ignored_kind(entry, name)
                if kind is not None:
                    ignored.append(IgnoredEntry(entry.name, kind))
                    continue
                assert name is not None
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # claimed by another process meanwhile
                    continue
                ready.append(ReadyBatch(name, Path(entry.path), stat.st_size, stat.st_ctime))
        ready.sort(key=lambda batch: batch.name)
        ignored.sort(key=lambda entry: entry.name)
        return Scan(ready, ignored)

    def claim(self, batch: ReadyBatch, into: Path) -> Path | None:
        """Move a ready batch into folder `into` (same file system) atomically.

        Returns the new path, or None when another process claimed it first or a batch of
        the same name is already there; a batch is never claimed twice.
        """
        target = into / batch.name.file_name
        try:
            rename_noreplace(batch.path, target)
        except (FileNotFoundError, FileExistsError):
            return None
        return target

    def quarantine(self, path: Path, rejection: BatchRejected) -> Path:
        """Move a rejected file to `quarantine/` with a `.reason.json` beside it."""
        self.quarantine_path.mkdir(parents=True, exist_ok=True)
        reason = QuarantineReason(
            file=path.name,
            code=str(rejection.reason),
            message=rejection.message,
            line=rejection.line,
            quarantined_at=datetime.now(UTC),
            from_folder=str(path.parent),
        )
        # Refused before anything is written there: a symlinked quarantine/ gets nothing.
        os.close(open_target_dir(self.quarantine_path))
        while True:
            target = _free_name(self.quarantine_path, path.name)
            # The reason is written first: a crash in between leaves the file where it was,
            # to be verified and quarantined again (reusing the orphaned reason's name), not
            # a quarantined file with no reason.
            _write_atomically(
                target.with_name(target.name + REASON_SUFFIX), msgspec.json.encode(reason)
            )
            try:
                rename_noreplace(path, target)
            except FileExistsError:  # another process took that name meanwhile
                continue
            fsync_dir(self.quarantine_path)
            return target


def _ignored_kind(entry: os.DirEntry[str], name: BatchName | None) -> IgnoredKind | None:
    if entry.is_symlink():
        return IgnoredKind.SYMLINK
    if entry.is_dir(follow_symlinks=False):
        return IgnoredKind.DIRECTORY
    if entry.name.startswith("."):
        if entry.name.endswith(PART_SUFFIX):
            return IgnoredKind.IN_PROGRESS
        return IgnoredKind.HIDDEN
    if name is None:
        return IgnoredKind.UNRECOGNISED_NAME
    if not entry.is_file(follow_symlinks=False):
        return IgnoredKind.NOT_A_FILE
    return None


def check_folder_mode(folder: Path) -> None:
    """Refuse a drop-zone folder that every local account may write into (UnsafeFolder).

    Anyone who can write a drop zone can plant files and symlinks in it; the right modes are
    2770 (services and agent share a group), 0750 or 0700 (docs/batch-format.md).
    """
    mode = os.stat(folder, follow_symlinks=False).st_mode
    if mode & stat.S_IWOTH:
        raise UnsafeFolder(
            f"{folder} is writable by every local account (mode {stat.S_IMODE(mode):o});"
            " use 2770, 0750 or 0700"
        )


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.N` when that is taken (the same batch rejected again)."""
    candidate = folder / name
    counter = 1
    while candidate.exists():
        candidate = folder / f"{name}.{counter}"
        counter += 1
    return candidate


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, never leaving it half-written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}{PART_SUFFIX}")
    with temporary.open("wb") as file:
        os.fchmod(file.fileno(), BATCH_FILE_MODE)  # says what the batch held, so as private
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    # A process killed mid-write left its temporary file behind (another pid's name): the
    # reason is complete now, so those are garbage.
    for stale in path.parent.glob(f".{path.name}.*{PART_SUFFIX}"):
        stale.unlink(missing_ok=True)

"""Claim folders: each process claims batches into its own locked folder, orphans are adopted.

A consumer of a drop zone (the transfer agent, an importer) claims batches by renaming them
into a folder of its own on the same file system (`SOURCE/.in-flight/`, `inbox/.importing/`).
The process holds an flock on the folder's `.lock` file for as long as it lives, and the
kernel releases it when the process dies, even by SIGKILL. A folder whose lock can be taken
belongs to a dead process: its batches are adopted by whoever takes the lock and handled
again (every step of handling a batch can be repeated).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from batchformat import BatchName
from batchformat.fsops import fsync_dir, rename_noreplace

LOCK_NAME: Final = ".lock"


class ClaimFolder:
    """This process's private folder for batches it has claimed."""

    def __init__(self, root: Path, owner: str) -> None:
        self.root = root
        self.path = root / f"{owner}-{uuid.uuid4().hex[:8]}"
        self._lock_fd: int | None = None

    @property
    def is_open(self) -> bool:
        """Whether the folder exists and this process holds its lock."""
        return self._lock_fd is not None

    def open(self) -> None:
        """Create the folder and hold its lock until `close`."""
        self.root.mkdir(parents=True, exist_ok=True)
        # Locked under a hidden name first: an adopter never sees the folder unlocked.
        hidden = self.root / f".{self.path.name}"
        hidden.mkdir()
        fd = os.open(hidden / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        hidden.rename(self.path)
        self._lock_fd = fd
        fsync_dir(self.root)

    def close(self) -> None:
        """Release the lock; remove the folder if nothing is left in it."""
        if self._lock_fd is None:
            return
        if not self.batches():
            _remove_folder(self.path)
        os.close(self._lock_fd)
        self._lock_fd = None

    def batches(self) -> list[Path]:
        """Batches claimed and not yet finished, in name (sequence) order."""
        return sorted(p for p in self.path.iterdir() if BatchName.parse(p.name))

    def adopt_orphans(self) -> list[Path]:
        """Move batches from dead processes' folders into this one; return what was moved."""
        adopted: list[Path] = []
        for folder in sorted(self.root.iterdir()):
            hidden = folder.name.startswith(".")
            if hidden or folder == self.path or folder.is_symlink() or not folder.is_dir():
                continue
            with _lock_if_owner_dead(folder) as dead:
                if dead:
                    adopted += self._take_batches_from(folder)
        return adopted

    def _take_batches_from(self, folder: Path) -> list[Path]:
        moved = []
        for path in sorted(folder.iterdir()):
            if BatchName.parse(path.name) is None or path.is_symlink():
                continue
            target = self.path / path.name
            try:
                rename_noreplace(path, target)
            except FileExistsError:
                continue  # the same name is being imported here; adopt it after that one
            moved.append(target)
        if not any(BatchName.parse(p.name) for p in folder.iterdir()):
            _remove_folder(folder)
        return moved


@contextlib.contextmanager
def _lock_if_owner_dead(folder: Path) -> Iterator[bool]:
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def _remove_folder(folder: Path) -> None:
    # Another process may be adopting the same dead folder: losing that race is harmless.
    with contextlib.suppress(OSError):
        (folder / LOCK_NAME).unlink(missing_ok=True)
        folder.rmdir()

"""Each agent process claims batches into its own locked in-flight folder.

The folder lives under `SOURCE/.in-flight/` (so a claim is a rename on one file system) and
is named after the agent and a random suffix. The process holds an flock on the folder's
`.lock` file for as long as it lives; the kernel releases it when the process dies, even by
SIGKILL. A folder whose lock can be taken therefore belongs to a dead agent: its batches are
adopted and delivered by whoever takes the lock.
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
    """This process's private in-flight folder for one route."""

    def __init__(self, root: Path, agent_id: str) -> None:
        self.root = root
        self.path = root / f"{agent_id}-{uuid.uuid4().hex[:8]}"
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Create the folder and hold its lock until `close`."""
        self.path.mkdir(parents=True, exist_ok=False)
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd
        fsync_dir(self.root)

    def close(self) -> None:
        """Release the lock; remove the folder if nothing is left in flight."""
        if self._lock_fd is None:
            return
        if not any(self.batches()):
            _remove_folder(self.path)
        os.close(self._lock_fd)
        self._lock_fd = None

    def batches(self) -> Iterator[Path]:
        """Batches claimed and not yet finished, in name order."""
        return iter(sorted(p for p in self.path.iterdir() if BatchName.parse(p.name)))

    def adopt_orphans(self) -> list[Path]:
        """Move batches from dead agents' folders into this one; return what was moved."""
        adopted: list[Path] = []
        for folder in sorted(self.root.iterdir()):
            if folder == self.path or folder.is_symlink() or not folder.is_dir():
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
                continue  # the same name is in flight here already; adopt it after that one
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
    # Another agent may be adopting the same dead folder: losing that race is harmless.
    with contextlib.suppress(OSError):
        (folder / LOCK_NAME).unlink(missing_ok=True)
        folder.rmdir()

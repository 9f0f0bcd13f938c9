"""File-system primitives for publishing and moving batches safely."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import io
import os
import stat
from pathlib import Path
from typing import Any, Final

from batchformat.errors import BatchRejected, RejectReason

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_SYNC_FILE_RANGE_WRITE = 2


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_regular_file(path: Path) -> io.FileIO:
    """Open a file for reading without following a symlink; reject anything but a file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BatchRejected(
                RejectReason.NOT_A_REGULAR_FILE, f"{path.name} is a symlink"
            ) from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BatchRejected(RejectReason.NOT_A_REGULAR_FILE, f"{path.name} is not a regular file")
    os.set_blocking(fd, True)
    return io.FileIO(fd, "r")


# Batch files carry password hashes and payloads: readable by the service's user and group
# only. Set with fchmod on the open file, so the process's umask cannot widen it.
BATCH_FILE_MODE: Final = 0o640


def open_part_file(path: Path) -> io.FileIO:
    """Open a hidden `.part` file for writing, exclusively, reclaiming one left by a crash.

    An flock marks the file as being written; the kernel drops it when its writer dies, so a
    stale part file is reused (truncated) while a live writer's file is never touched
    (FileExistsError). Keep the file open until it has been renamed to its final name.
    """
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, BATCH_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FileExistsError(f"{path.name} is being written by another process") from None
        # The name may have been renamed away (published) between our open and our lock.
        try:
            same_file = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            os.fchmod(fd, BATCH_FILE_MODE)
            os.ftruncate(fd, 0)
            return io.FileIO(fd, "w")
        os.close(fd)


def write_all(file: io.FileIO, data: bytes | bytearray | memoryview) -> None:
    """Write every byte (a raw file may write less than asked)."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written or 0 :]


# Writes of this size fill the page cache with small folios, as `cp` (splice) does; one
# write of several MiB makes the kernel (6.x, ext4) allocate large folios, whose memory
# was measured 3-4x slower to fill on a busy VM (sys time of a 512 MiB copy: 1.4 s, 0.3 s).
WRITE_SLICE_BYTES: Final = 64 * 1024


def write_sliced(file: io.FileIO, data: bytes | bytearray | memoryview) -> None:
    """Write every byte, WRITE_SLICE_BYTES at a time (see there)."""
    view = memoryview(data)
    for start in range(0, len(view), WRITE_SLICE_BYTES):
        write_all(file, view[start : start + WRITE_SLICE_BYTES])


def start_writeback(file: io.FileIO, offset: int, length: int) -> None:
    """Start writing a range of a file's dirty pages to disk, without waiting for it.

    sync_file_range(SYNC_FILE_RANGE_WRITE): the pages stay cached and nothing is durable
    until fsync, but the final fsync finds little left to write. (posix_fadvise DONTNEED,
    used before, also starts writeback but drops pages and drains every CPU's page lists,
    and made a 512 MiB copy about three times slower on a busy machine.) A no-op where
    the call is missing.
    """
    if _sync_file_range is None:
        return
    if _sync_file_range(file.fileno(), offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ESPIPE):
            raise OSError(err, os.strerror(err))


class UnsafeTargetFolder(OSError):
    """A folder files are moved into is a symlink or owned by another account: refused."""

    code = "unsafe_target_folder"


def open_target_dir(folder: Path) -> int:
    """A descriptor of `folder` to move files into: never a symlink, owned by us (or root).

    Whoever can write a drop zone could replace `quarantine/` or `archive/` by a symlink to
    any folder; moves go through this descriptor (renameat-style), so the folder checked is
    the folder used. Close the descriptor when done.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and folder.is_symlink():
            raise UnsafeTargetFolder(
                exc.errno, f"{UnsafeTargetFolder.code}: {folder} is a symlink", str(folder)
            ) from None
        raise
    owner = os.fstat(fd).st_uid
    if owner not in (os.geteuid(), 0):
        os.close(fd)
        raise UnsafeTargetFolder(
            errno.EPERM,
            f"{UnsafeTargetFolder.code}: {folder} is owned by uid {owner}, not by us",
            str(folder),
        )
    return fd


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename atomically, failing with FileExistsError instead of replacing `dst`.

    `dst`'s folder is opened with open_target_dir (UnsafeTargetFolder if it is a symlink or
    someone else's) and the rename goes through that descriptor.
    """
    dir_fd = open_target_dir(dst.parent)
    try:
        if _renameat2 is not None:
            result = _renameat2(
                _AT_FDCWD, os.fsencode(src), dir_fd, os.fsencode(dst.name), _RENAME_NOREPLACE
            )
            if result == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(err, os.strerror(err), str(src), None, str(dst))
        _link_then_unlink(src, dst, dir_fd)
    finally:
        os.close(dir_fd)


def replace_into(src: Path, folder: Path) -> Path:
    """Move `src` into `folder` under its name, replacing a file there; folder checked first."""
    dir_fd = open_target_dir(folder)
    try:
        os.replace(src, src.name, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return folder / src.name


def _link_then_unlink(src: Path, dst: Path, dir_fd: int) -> None:
    # For file systems without renameat2 flags: the link is the atomic no-replace step; a
    # crash before the unlink leaves both names on one inode, which `samefile` recognises.
    os.link(src, dst.name, dst_dir_fd=dir_fd, follow_symlinks=False)
    os.unlink(src)


def _load_libc_function(name: str, argtypes: list[Any]) -> Any:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    func = getattr(libc, name, None)
    if func is None:
        return None
    func.argtypes = argtypes
    func.restype = ctypes.c_int
    return func


_renameat2 = _load_libc_function(
    "renameat2", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
)
_sync_file_range = _load_libc_function(
    "sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
)

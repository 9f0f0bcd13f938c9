"""Point-in-time recovery with PostgreSQL's own tools: WAL archiving and `pg_basebackup`.

Why these and not pgBackRest: they ship with every PostgreSQL (pgserver's wheel, Debian's
packages, the postgres image) in the server's own version, so the WAL format always
matches; pgBackRest is one more daemon-less tool to install, configure and keep in step with
each server major version (Debian's is 2.45, several releases behind). What pgBackRest adds
(parallel, incremental, encrypted, remote repositories) Airlock's database sizes do not need.

- `ARCHIVING` + `archive_settings(folder)`: the server settings that copy each finished WAL
  segment into `folder`; `archive_timeout` bounds the RPO (a quiet server still switches
  segments that often).
- `base_backup(url, dest)`: `pg_basebackup` (tar, compressed, fast checkpoint).
- `prepare_recovery(base, archive, pgdata, target_time)`: a data folder that, when started,
  replays the archive up to `target_time` and then opens for writes.
- `LocalServer`: start and stop a server on a data folder (unix socket only), for the
  recovered copy.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

__all__ = [
    "ARCHIVE_TIMEOUT_S",
    "LocalServer",
    "archive_settings",
    "base_backup",
    "prepare_recovery",
    "run_tool",
]

ARCHIVE_TIMEOUT_S: Final = 60
"""The longest a committed transaction waits to reach the archive: the RPO's bound."""
_TIMEOUT_S: Final = 3600


def archive_settings(archive_dir: Path) -> dict[str, str]:
    """The server settings that archive every WAL segment into `archive_dir`."""
    # `test ! -f` refuses to overwrite a segment already archived (PostgreSQL's documented
    # form); PostgreSQL retries a failed archive_command and keeps the WAL until it succeeds.
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"test ! -f {archive_dir}/%f && cp %p {archive_dir}/%f",
        "archive_timeout": str(ARCHIVE_TIMEOUT_S),
    }


def base_backup(database_url: str, dest: Path, bin_dir: Path) -> Path:
    """Take a base backup of the server into `dest` (base.tar.gz with the WAL it needs)."""
    dest.mkdir(parents=True, exist_ok=False)
    run_tool(
        bin_dir / "pg_basebackup",
        f"--dbname={database_url}",
        f"--pgdata={dest}",
        "--format=tar",
        "--gzip",
        "--checkpoint=fast",
        "--wal-method=fetch",
        "--no-password",
    )
    return dest


def prepare_recovery(
    base: Path, archive_dir: Path, pgdata: Path, target_time: datetime, *, owner: str | None
) -> None:
    """Unpack `base` into a new `pgdata` set to replay `archive_dir` up to `target_time`."""
    pgdata.mkdir(parents=True, exist_ok=False, mode=0o700)
    # --wal-method=fetch puts the WAL the backup needs into base.tar.gz itself.
    with tarfile.open(base / "base.tar.gz") as archive:
        archive.extractall(pgdata, filter="tar")
    settings = {
        "restore_command": f"cp {archive_dir}/%f %p",
        "recovery_target_time": target_time.isoformat(),
        "recovery_target_action": "promote",
        # The recovered copy must not archive into the production archive.
        "archive_mode": "off",
        # No read-only connections during recovery: `pg_ctl start -w` returns once it is done.
        "hot_standby": "off",
    }
    with (pgdata / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        for key, value in settings.items():
            conf.write(f"{key} = '{value}'\n")
    (pgdata / "recovery.signal").touch()
    if owner is not None:
        _chown_tree(pgdata, owner)


@dataclass
class LocalServer:
    """A PostgreSQL server on `pgdata`, listening only on a socket in `socket_dir`."""

    pgdata: Path
    socket_dir: Path
    bin_dir: Path
    owner: str | None = None  # initdb and postgres refuse root: run them as this user

    def init(self, settings: dict[str, str] | None = None) -> None:
        """initdb a new cluster, with `settings` appended to its configuration."""
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._own(self.pgdata)
        self._as_owner(self.bin_dir / "initdb", "--auth=trust", "-U", "postgres", self.pgdata)
        if settings:
            with (self.pgdata / "postgresql.conf").open("a", encoding="utf-8") as conf:
                for key, value in settings.items():
                    conf.write(f"{key} = '{value}'\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections (recovery done)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.socket_dir)
        self._as_owner(
            self.bin_dir / "pg_ctl",
            *("-D", self.pgdata, "-w", "-t", str(_TIMEOUT_S), "-l", self.pgdata / "server.log"),
            *("-o", f"-h '' -k {self.socket_dir}", "start"),
        )
        # pg_ctl -w returns while a recovery still replays (hot_standby off): wait for it.
        deadline = time.monotonic() + _TIMEOUT_S
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.pgdata} did not finish its recovery")
            time.sleep(0.1)

    def _ready(self) -> bool:
        probe = [str(self.bin_dir / "pg_isready"), "-q", "-h", str(self.socket_dir)]
        return subprocess.run(probe, check=False, timeout=30).returncode == 0

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        self._as_owner(self.bin_dir / "pg_ctl", "-D", self.pgdata, "-w", "-m", "fast", "stop")

    def url(self, database: str = "postgres") -> str:
        """The URL of `database` on this server."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def _own(self, path: Path) -> None:
        if self.owner is not None:
            shutil.chown(path, self.owner, self.owner)

    def _as_owner(self, *command: object) -> None:
        run_tool(*command, user=self.owner)


def _chown_tree(root: Path, owner: str) -> None:
    entry = pwd.getpwnam(owner)
    for folder, _, files in os.walk(root):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(Path(folder) / name, entry.pw_uid, entry.pw_gid)


def run_tool(*command: object, user: str | None = None) -> None:
    """Run a PostgreSQL program; RuntimeError with the end of its output if it fails."""
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
        user=user,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(str(command[0])).name} failed ({result.returncode}): "
            + (result.stderr or result.stdout).strip()[-2000:]
        )

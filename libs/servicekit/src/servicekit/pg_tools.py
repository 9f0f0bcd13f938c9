"""Finding PostgreSQL's client programs (`pg_dump`, `pg_restore`) for a server's version.

`pg_dump` reads only servers of its own major version or older, so the programs must be at
least the server's major version: with a real server (`prefer_path`) those on PATH are tried
first, then pgserver's (PostgreSQL 16, installed with servicekit's embedded servers); the
first new enough wins. `--pg-bin` (`bin_dir`) names the only folder to look in.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from servicekit.backup_errors import BackupError, BackupErrorCode

__all__ = ["PgTools", "find_pg_tools"]

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


@dataclass(frozen=True, slots=True)
class PgTools:
    """The `pg_dump` and `pg_restore` to use, their major version and where they came from."""

    pg_dump: Path
    pg_restore: Path
    major: int
    origin: str  # "PATH", "pgserver" or the folder given


def find_pg_tools(server_major: int, prefer_path: bool, bin_dir: Path | None = None) -> PgTools:
    """The first `pg_dump`/`pg_restore` pair at least `server_major`: `bin_dir` alone if
    given, else PATH's (only when `prefer_path`), then pgserver's."""
    candidates: list[tuple[str, Path | None, Path | None]] = []
    if bin_dir is not None:
        candidates.append(_pair_in(str(bin_dir), bin_dir))
    else:
        if prefer_path:
            candidates.append(("PATH", _which("pg_dump"), _which("pg_restore")))
        pgserver_bin = _pgserver_bin_dir()
        if pgserver_bin is not None:
            candidates.append(_pair_in("pgserver", pgserver_bin))
    too_old = []
    for origin, pg_dump, pg_restore in candidates:
        if pg_dump is None or pg_restore is None:
            continue
        major = _major_version(pg_dump)
        if major is not None and major >= server_major:
            return PgTools(pg_dump, pg_restore, major, origin)
        too_old.append(f"{pg_dump} ({origin}) is version {major}")
    if too_old:
        raise BackupError(
            BackupErrorCode.TOOLS_TOO_OLD,
            f"the server runs PostgreSQL {server_major}; pg_dump must be at least that: "
            + "; ".join(too_old)
            + ". Install the client programs of that version, or name them with --pg-bin.",
        )
    places = ", ".join(origin for origin, _, _ in candidates) or "nowhere"
    raise BackupError(
        BackupErrorCode.TOOLS_MISSING,
        f"no pg_dump and pg_restore found (looked in: {places}); name them with --pg-bin",
    )


def _major_version(program: Path) -> int | None:
    try:
        result = subprocess.run(
            [str(program), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    match = _VERSION.search(result.stdout)
    return int(match[1]) if match else None


def _pair_in(origin: str, folder: Path) -> tuple[str, Path | None, Path | None]:
    return origin, _existing(folder / "pg_dump"), _existing(folder / "pg_restore")


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _pgserver_bin_dir() -> Path | None:
    # Found without importing pgserver, whose import is slow and warns (servicekit.embedded).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

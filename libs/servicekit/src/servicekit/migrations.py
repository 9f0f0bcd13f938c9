"""Run Piccolo migrations for a list of apps, safely when several processes try at once.

Piccolo takes no lock around migrations: two replicas starting together could both run the
same one. `migrate` holds a PostgreSQL advisory lock for the whole run, so the second waits
and then finds nothing left to do. Migrations run in a child process because Piccolo reads
its engine and apps from a configuration module once per process (`servicekit.piccolo_conf`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Final

import asyncpg

# Any fixed 64-bit number that no other advisory lock of ours uses.
MIGRATION_LOCK_ID: Final = 0x41_69_72_6C_6F_63_6B  # "Airlock"
_RUN_PICCOLO: Final = "import sys; from piccolo.main import main; sys.exit(main())"


class MigrationError(Exception):
    """A migration failed; `output` holds what Piccolo printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


async def migrate(dsn: str, apps: Sequence[str], *, timeout_s: float = 600.0) -> str:
    """Apply every pending migration of `apps` (in order) to the database; return the log."""
    connection = await asyncpg.connect(dsn, timeout=30)
    try:
        async with asyncio.timeout(timeout_s):
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            return await asyncio.to_thread(_run_forwards, dsn, apps, timeout_s)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await connection.close()


def _run_forwards(dsn: str, apps: Sequence[str], timeout_s: float) -> str:
    env = {
        **os.environ,
        "PICCOLO_CONF": "servicekit.piccolo_conf",
        "PICCOLO_DSN": dsn,
        "PICCOLO_APPS": ",".join(apps),
    }
    result = subprocess.run(
        [sys.executable, "-c", _RUN_PICCOLO, "migrations", "forwards", "all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or "Traceback" in output:
        raise MigrationError(f"migrations failed (exit code {result.returncode})", output)
    return output

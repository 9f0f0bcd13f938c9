"""Why a backup or restore failed: stable codes, their exit codes, and the error carrying them."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from servicekit.redaction import scrub_text

__all__ = ["EXIT_CODES", "BackupError", "BackupErrorCode"]


class BackupErrorCode(StrEnum):
    """Why a backup or restore failed; each has its exit code (`BackupError.exit_code`)."""

    DATABASE_UNREACHABLE = "database_unreachable"
    TOOLS_MISSING = "pg_tools_missing"
    TOOLS_TOO_OLD = "pg_tools_too_old"
    DUMP_FAILED = "dump_failed"
    ARCHIVE_UNREADABLE = "archive_unreadable"
    DATABASE_IN_USE = "database_in_use"
    DATABASE_HAS_EXTRA_TABLES = "database_has_extra_tables"
    RESTORE_FAILED = "restore_failed"


EXIT_CODES: Final = {
    BackupErrorCode.DATABASE_UNREACHABLE: 1,
    BackupErrorCode.DUMP_FAILED: 1,
    BackupErrorCode.RESTORE_FAILED: 1,
    BackupErrorCode.ARCHIVE_UNREADABLE: 1,
    BackupErrorCode.TOOLS_MISSING: 3,
    BackupErrorCode.TOOLS_TOO_OLD: 3,
    BackupErrorCode.DATABASE_IN_USE: 4,
    BackupErrorCode.DATABASE_HAS_EXTRA_TABLES: 4,
}
"""1: the operation failed; 3: no suitable pg_dump/pg_restore; 4: refused, nothing changed."""


class BackupError(Exception):
    """A backup or restore failed or was refused; the message is safe to show."""

    def __init__(self, code: BackupErrorCode, message: str) -> None:
        super().__init__(scrub_text(message))
        self.code = code

    @property
    def exit_code(self) -> int:
        """The command's exit code for this failure."""
        return EXIT_CODES[self.code]

"""Why a batch was rejected: one stable code per reason, shared by every reader."""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """Stable reason codes; they appear in logs, metrics, `.reason.json` files and the CLI."""

    HEADER_MISSING = "header_missing"
    HEADER_INVALID = "header_invalid"
    UNSUPPORTED_FORMAT = "unsupported_format"
    NAME_MISMATCH = "name_mismatch"
    SOURCE_MISMATCH = "source_mismatch"
    DESTINATION_MISMATCH = "destination_mismatch"
    TRAILER_MISSING = "trailer_missing"
    TRAILER_INVALID = "trailer_invalid"
    RECORD_COUNT_MISMATCH = "record_count_mismatch"
    DIGEST_MISMATCH = "digest_mismatch"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    LINE_TOO_LONG = "line_too_long"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    RECORD_INVALID = "record_invalid"
    UNENCRYPTED_REFUSED = "unencrypted_refused"  # batchformat/1 where only /2 is accepted
    UNKNOWN_RECIPIENT_KEY = "unknown_recipient_key"  # encrypted to no key this reader holds
    WRONG_RECIPIENT = "wrong_recipient"  # a held key id, but the body is not for that key
    CIPHERTEXT_TRUNCATED = "ciphertext_truncated"  # the age stream ends before its last chunk
    CIPHERTEXT_INVALID = "ciphertext_invalid"  # a chunk fails authentication
    NOT_A_REGULAR_FILE = "not_a_regular_file"
    NAME_CONFLICT = "name_conflict"  # a different batch of that name was already delivered
    SEQ_TOO_FAR_AHEAD = "seq_too_far_ahead"  # beyond the highest seen by more than allowed


class BatchRejected(Exception):
    """A batch failed verification; nothing from it may be applied."""

    def __init__(self, reason: RejectReason, message: str, *, line: int | None = None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"{reason}: {message}{where}")
        self.reason = reason
        self.message = message
        self.line = line

    def as_dict(self) -> dict[str, str | int | None]:
        """The rejection as plain data, for `.reason.json` files and structured logs."""
        return {"code": str(self.reason), "message": self.message, "line": self.line}


class KeyFileError(ValueError):
    """A key file is missing, malformed, or named with an invalid key id."""


class UnsafeFolder(Exception):
    """A drop-zone folder anyone could write into: refused, with a stable code."""

    code = "drop_zone_world_writable"

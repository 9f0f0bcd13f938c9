"""The processor's own stable error codes (servicekit's and authkit's cover the rest)."""

from __future__ import annotations

from enum import StrEnum

from servicekit.errors import ApiError


class ProcessorErrorCode(StrEnum):
    """Codes of the processor's domain errors."""

    USERNAME_TAKEN = "username_taken"
    PROFILE_TYPE_EXISTS = "profile_type_exists"
    PROFILE_TYPE_UNKNOWN = "profile_type_unknown"
    PROFILE_TYPE_IN_USE = "profile_type_in_use"
    USER_NOT_FOUND = "user_not_found"
    PROFILE_TYPE_NOT_FOUND = "profile_type_not_found"
    REQUEST_NOT_FOUND = "request_not_found"
    DEAD_LETTER_NOT_FOUND = "dead_letter_not_found"
    DEAD_LETTER_ALREADY_RETRIED = "dead_letter_already_retried"
    DOCUMENT_NOT_FOUND = "document_not_found"
    DUPLICATE_DOCUMENT_ID = "duplicate_document_id"
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    LAST_ADMIN = "last_admin"


def not_found(code: ProcessorErrorCode, what: str) -> ApiError:
    """404 with a domain code."""
    return ApiError(404, str(code), f"{what} does not exist")


def conflict(code: ProcessorErrorCode, message: str) -> ApiError:
    """409 with a domain code."""
    return ApiError(409, str(code), message)

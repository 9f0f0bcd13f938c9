"""The stable error codes servicekit answers with; clients may rely on every one of them.

Services add their own domain codes (``invalid_credentials``, ``request_not_cancellable``)
in their own ``error_codes`` module, next to the errors that raise them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from http import HTTPStatus

__all__ = ["ErrorCode", "code_for_status"]


class ErrorCode(StrEnum):
    """Codes for the ``error.code`` field of every error response."""

    BAD_REQUEST = "bad_request"
    VALIDATION_ERROR = "validation_error"
    INVALID_CURSOR = "invalid_cursor"
    """A listing's `cursor` that the API did not give (`servicekit.paging`)."""
    NOT_AUTHENTICATED = "not_authenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    REQUEST_TIMEOUT = "request_timeout"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    CLIENT_DISCONNECTED = "client_disconnected"
    """Never seen by a client: the status label (499) and log code of an abandoned request."""
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


_CODE_BY_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    408: ErrorCode.REQUEST_TIMEOUT,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
    500: ErrorCode.INTERNAL_ERROR,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


def code_for_status(status_code: int) -> str:
    """Return the code for an HTTP status: a named one, else the status phrase in snake_case."""
    if status_code in _CODE_BY_STATUS:
        return _CODE_BY_STATUS[status_code]
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return ErrorCode.INTERNAL_ERROR if status_code >= 500 else ErrorCode.BAD_REQUEST
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")

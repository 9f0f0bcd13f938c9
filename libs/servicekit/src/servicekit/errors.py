"""Every error leaves as ``{"error": {"code", "message", "details"}}`` with the right status.

- `ApiError` is what services raise for a failure with a stable code;
- Litestar's HTTP exceptions map to the codes of `servicekit.error_codes`; validation
  failures (bodies, path, query, headers) are **400** ``validation_error`` with one detail per
  field; 429 keeps its ``Retry-After`` header;
- a body Litestar's decoder cannot read (invalid UTF-8, nested deeper than it recurses) is a
  **400** ``validation_error`` too: those escape Litestar's own mapping;
- anything else is a 500 ``internal_error``: logged with its (redacted) traceback, and the
  response carries only the request id, never the exception's text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from servicekit.error_codes import ErrorCode, code_for_status
from servicekit.middleware import request_id_for
from servicekit.redaction import redact_value, scrub_text

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "error_response",
    "exception_handlers",
    "validation_error",
]

_log = structlog.get_logger("servicekit.errors")

_INTERNAL_ERROR_MESSAGE: Final = (
    "An internal error occurred; quote the request id when reporting it."
)
_VALIDATION_MESSAGE: Final = "The request is not valid."
# Litestar's body decoders: an error raised under one of them is the body's fault.
_BODY_DECODERS: Final = frozenset({"decode_json", "decode_msgpack"})
_DECODERS_MODULE: Final = "litestar.serialization"
_AT_PATH = re.compile(r"^(?P<problem>.*?) - at `\$\.?(?P<field>[^`]*)`$")


class ErrorDetail(msgspec.Struct, frozen=True):
    """The inside of an error body."""

    code: str
    message: str
    details: Any = None


class ErrorBody(msgspec.Struct, frozen=True):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """A failure with a stable code, raised by services and answered as-is."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response[ErrorBody]:
    """Build an error response in the shared shape."""
    body = ErrorBody(ErrorDetail(code=str(code), message=message, details=details))
    return Response(body, status_code=status_code, headers=dict(headers or {}))


def validation_error(exc: msgspec.ValidationError, *, source: str = "body") -> ApiError:
    """Turn a msgspec validation failure of a service's own decoding into a 400 `ApiError`."""
    match = _AT_PATH.match(str(exc))
    problem, field = (match["problem"], match["field"]) if match else (str(exc), "")
    detail = {"field": field or None, "source": source, "message": scrub_text(problem)}
    return ApiError(400, ErrorCode.VALIDATION_ERROR, _VALIDATION_MESSAGE, [detail])


def _api_error_handler(request: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    return error_response(
        exc.status_code, exc.code, exc.message, redact_value(exc.details), exc.headers
    )


def _http_exception_handler(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[ErrorBody]:
    headers = exc.headers or {}
    if isinstance(exc, ValidationException):
        details = _validation_details(exc.extra)
        return error_response(
            400, ErrorCode.VALIDATION_ERROR, _VALIDATION_MESSAGE, details, headers
        )
    status_code = exc.status_code
    if status_code >= 500:
        _log.error(
            "http_exception",
            status=status_code,
            request_id=request_id_for(request.scope),
            exc_info=exc,
        )
        # A server error's own text may describe internals; the status phrase does not.
        return error_response(
            status_code, code_for_status(status_code), HTTPStatus(status_code).phrase, None, headers
        )
    return error_response(
        status_code, code_for_status(status_code), scrub_text(exc.detail), None, headers
    )


def _validation_details(extra: object) -> list[dict[str, object]]:
    """One entry per invalid field, from the messages Litestar attaches to the exception."""
    if not isinstance(extra, list):
        return []
    return [
        {
            "field": item.get("key"),
            "source": item.get("source"),
            "message": scrub_text(str(item.get("message", ""))),
        }
        for item in extra
        if isinstance(item, dict)
    ]


def _raised_decoding_the_body(exc: BaseException) -> bool:
    """Whether `exc` came out of Litestar decoding a request body (not out of our code)."""
    if not isinstance(exc, UnicodeDecodeError | RecursionError | msgspec.DecodeError):
        return False
    traceback = exc.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name in _BODY_DECODERS and str(
            frame.f_globals.get("__name__", "")
        ).startswith(_DECODERS_MODULE):
            return True
        traceback = traceback.tb_next
    return False


def _internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if _raised_decoding_the_body(exc):
        detail = {"field": None, "source": "body", "message": "The body is not valid JSON."}
        return error_response(400, ErrorCode.VALIDATION_ERROR, _VALIDATION_MESSAGE, [detail])
    request_id = request_id_for(request.scope)
    _log.error(
        "unhandled_exception",
        method=request.method,
        route=request.scope.get("path_template"),
        request_id=request_id,
        exc_info=exc,
    )
    return error_response(
        500, ErrorCode.INTERNAL_ERROR, _INTERNAL_ERROR_MESSAGE, {"request_id": request_id}
    )


def exception_handlers() -> ExceptionHandlersMap:
    """The handlers to register on an app (`ServiceKitPlugin` does it for you)."""
    return {
        ApiError: _api_error_handler,
        HTTPException: _http_exception_handler,
        Exception: _internal_error_handler,
    }

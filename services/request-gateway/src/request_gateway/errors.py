"""The gateway's own stable error codes (servicekit's and authkit's cover the rest)."""

from __future__ import annotations

from enum import StrEnum

from servicekit.errors import ApiError


class GatewayErrorCode(StrEnum):
    """Codes of the gateway's domain errors."""

    REQUEST_NOT_FOUND = "request_not_found"
    REQUEST_TYPE_NOT_ALLOWED = "request_type_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_PENDING_REQUESTS = "too_many_pending_requests"
    RATE_LIMITED = "rate_limited"
    RATE_LIMIT_UNAVAILABLE = "rate_limit_unavailable"
    REQUEST_FINISHED = "request_finished"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    PROFILE_TYPE_UNKNOWN = "profile_type_unknown"
    API_KEY_NOT_FOUND = "api_key_not_found"
    TOO_MANY_API_KEYS = "too_many_api_keys"
    INVALID_LAST_EVENT_ID = "invalid_last_event_id"
    TOO_MANY_WAITS = "too_many_waits"
    WAITS_UNAVAILABLE = "waits_unavailable"


def gateway_error(status: int, code: GatewayErrorCode, message: str) -> ApiError:
    """An `ApiError` with one of the gateway's codes."""
    return ApiError(status, str(code), message)

from __future__ import annotations

import msgspec
import pytest

from servicekit.error_codes import ErrorCode, code_for_status


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (401, "not_authenticated"),
        (403, "forbidden"),
        (404, "not_found"),
        (405, "method_not_allowed"),
        (409, "conflict"),
        (413, "payload_too_large"),
        (429, "rate_limited"),
        (500, "internal_error"),
        (503, "service_unavailable"),
    ],
)
def test_named_statuses_have_their_stable_codes(status: int, code: str) -> None:
    assert code_for_status(status) == code


def test_other_statuses_use_their_phrase_in_snake_case() -> None:
    assert code_for_status(410) == "gone"
    assert code_for_status(418) == "i_m_a_teapot"
    assert code_for_status(504) == "gateway_timeout"


def test_unknown_statuses_fall_back_by_class() -> None:
    assert code_for_status(499) == ErrorCode.BAD_REQUEST
    assert code_for_status(599) == ErrorCode.INTERNAL_ERROR


def test_codes_are_plain_strings_in_json() -> None:
    assert msgspec.json.encode({"code": ErrorCode.RATE_LIMITED}) == b'{"code":"rate_limited"}'
    assert str(ErrorCode.VALIDATION_ERROR) == "validation_error"

"""What a schemathesis run checks of every answer, shared by the gateway's and the processor's."""

from __future__ import annotations

from typing import Any

import httpx
from schemathesis import Case, checks


def check_answer(
    case: Case[Any], response: httpx.Response | Any, *, lenient: frozenset[str] = frozenset()
) -> None:
    """Fail on a 5xx or a broken contract: invalid data accepted (except for the parameters
    named in `lenient`), an undocumented content type, a success off its schema, or an error
    not in our `{"error": {...}}` shape."""
    contract = [checks.not_a_server_error, checks.content_type_conformance]
    if not lenient.intersection(case.query or {}):
        contract.append(checks.negative_data_rejection)
    case.validate_response(response, checks=contract)
    if response.status_code < 400:
        case.validate_response(response, checks=[checks.response_schema_conformance])
    else:
        error = response.json()["error"]
        assert isinstance(error["code"], str), error
        assert isinstance(error["message"], str), error

"""What a schemathesis run checks of every answer, shared by the gateway's and the processor's."""

from __future__ import annotations

from typing import Any

import httpx
from schemathesis import Case, checks


def check_answer(
    case: Case[Any], response: httpx.Response | Any, *, lenient: frozenset[str] = frozenset()
) -> None:
    """Fail on a 5xx or a broken contract: invalid data accepted (except for the parameters
    named in `lenient`), a status the document does not list for the operation, an
    undocumented content type, or a body, success or error, off its documented schema (every
    error's is the shared `{"error": {...}}` body)."""
    contract = [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
    ]
    if not lenient.intersection(case.query or {}):
        contract.append(checks.negative_data_rejection)
    case.validate_response(response, checks=contract)

"""Property-based runs against the OpenAPI document: no generated input gets a 5xx.

Every operation is called with generated inputs, valid and invalid, as a signed-in user who
is also an admin, so the authenticated routes answer with more than 401 and 403. A response
fails the run when it is a 5xx, when it accepts data the document says is invalid, when its
content type is not the documented one, when its status is not one the document lists for
the operation, or when its body, success or error, does not match its documented schema
(`tests.schema_checks`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode

from request_gateway.app import create_app
from request_gateway.settings import GatewaySettings
from servicekit.openapi import DOCS_CONTENT_SECURITY_POLICY
from servicekit.testing import MakeDatabase
from tests import schema_checks
from tests.request_gateway.conftest import profile_type
from tests.request_gateway.live import LiveGateway, Member, live_gateway

# The document comes from the app itself (building it needs no database or Redis):
# schemathesis's fixture-based loading fails under pytest 9, and a document known at import
# gives one test per operation. `test_the_server_serves_this_document` ties the two together.
DOCUMENT: dict[str, Any] = create_app(GatewaySettings()).openapi_schema.to_schema()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The runs send their member's credential themselves: the document's security schemes are
# not parameters to generate (or to leave out, as invalid data the server would wrongly accept).
schema.config.generation.update(with_security_parameters=False)
SUBMIT = schema["/api/v1/requests"]["POST"]
# A stream that opens stays open: fuzzed on its own, reading no further than its headers.
EVENTS_PATH = "/api/v1/requests/events"
EVENTS = schema[EVENTS_PATH]["GET"]

# Why a valid submit of an allowed type may still be refused: U+0000 in the payload, over the
# profile's size, or an idempotency key already used for another payload.
REFUSALS = {400: "validation_error", 413: "payload_too_large", 422: "idempotency_key_reused"}

fuzzing = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def live(
    postgres_module_database: MakeDatabase,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveGateway]:
    data_dir = tmp_path_factory.mktemp("schema-gateway")
    # One server process: the inputs are under test here, test_server covers two processes.
    yield from live_gateway(postgres_module_database, redis_server_url, data_dir, workers=1)


@pytest.fixture(scope="module")
def member(live: LiveGateway) -> Member:
    """An admin who may also submit, with limits no run reaches."""
    roomy = profile_type("fuzzing", rpm=60_000, burst=10_000, max_pending=10_000)
    return asyncio.run(live.member(roles=("user", "admin"), profile=roomy))


def test_the_server_serves_this_document(live: LiveGateway) -> None:
    served = httpx.get(f"{live.url}/schema/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_the_server_serves_its_docs_page_and_every_asset_itself(live: LiveGateway) -> None:
    page = httpx.get(f"{live.url}/schema", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_CONTENT_SECURITY_POLICY
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls
    for url in urls:
        assert url.startswith("/schema/assets/"), url
        asset = httpx.get(f"{live.url}{url}", timeout=30)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] in {
            "text/javascript",
            "text/css",
            "image/png",
        }, url


def check_answer(case: Case[Any], live: LiveGateway, member: Member) -> Any:
    """Call the live server with `case`; fail on a 5xx or a broken contract."""
    response = case.call(base_url=live.url, headers=member.headers)
    schema_checks.check_answer(case, response)
    return response


@schema.exclude(path=EVENTS_PATH).parametrize()
@fuzzing
def test_no_input_gets_a_server_error(case: Case[Any], live: LiveGateway, member: Member) -> None:
    check_answer(case, live, member)


@given(case=EVENTS.as_strategy())
@fuzzing
def test_no_input_to_the_event_stream_gets_a_server_error(
    case: Case[Any], live: LiveGateway, member: Member
) -> None:
    sent = case.as_transport_kwargs(base_url=live.url, headers=member.headers)
    with requests.request(**sent, stream=True, timeout=30) as response:
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("text/event-stream")
            return
        assert response.content  # a refusal is small: read it whole
    schema_checks.check_answer(case, response)


@given(case=SUBMIT.as_strategy(GenerationMode.POSITIVE))
@settings(fuzzing, max_examples=60)
def test_any_payload_of_an_allowed_type_is_queued_or_refused_with_a_reason(
    case: Case[Any], live: LiveGateway, member: Member
) -> None:
    # Generated types are almost never one the profile allows (403 before the payload is
    # looked at): this run reaches the storing of arbitrary payloads and idempotency keys.
    assert isinstance(case.body, dict)
    case.body = {**case.body, "type": "echo"}
    response = check_answer(case, live, member)
    if response.status_code in REFUSALS:
        assert response.json()["error"]["code"] == REFUSALS[response.status_code]
    else:
        assert response.status_code in {200, 202}, response.text  # 200: a replayed key
    if response.status_code == 202:
        assert as_numbers(response.text)["payload"] == as_numbers(json.dumps(case.body))["payload"]


def as_numbers(text: str) -> Any:
    """JSON with every number decoded by value: jsonb writes 1e300 out in full, a Python int."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)

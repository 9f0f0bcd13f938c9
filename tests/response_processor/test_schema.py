"""Property-based runs against the processor's OpenAPI document: no generated input gets a 5xx.

Every operation is called in-process (the app with its real PostgreSQL and Redis) with
generated inputs, valid and invalid, as the bootstrap admin, so the guarded routes answer
with more than 401 and 403. The checks are the gateway's (`tests.schema_checks`): no 5xx,
and every answer, success or error, has a documented status and matches its schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar.testing import TestClient
from schemathesis import Case

from response_processor.app import create_app
from response_processor.db.piccolo_app import APPS
from response_processor.settings import ProcessorSettings
from servicekit.migrations import migrate
from servicekit.testing import MakeDatabase
from tests import schema_checks
from tests.response_processor.conftest import ADMIN_PASSWORD, NEW_ADMIN_PASSWORD

# Built from the app itself (no database needed), so each operation gets its own test.
DOCUMENT: dict[str, Any] = create_app(
    ProcessorSettings(jwt_secret="x" * 64)
).openapi_schema.to_schema()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The runs send their member's credential themselves: the document's security schemes are
# not parameters to generate (or to leave out, as invalid data the server would wrongly accept).
schema.config.generation.update(with_security_parameters=False)

fuzzing = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def client(
    postgres_module_database: MakeDatabase,
    redis_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient[Any]]:
    async def setup(url: str) -> None:
        await migrate(url, APPS)

    data_dir: Path = tmp_path_factory.mktemp("schema-processor")
    password_file = data_dir / "admin-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    app_settings = ProcessorSettings(
        data_dir=data_dir / "data",
        database_url=postgres_module_database(setup, key="response-processor"),
        redis_url=redis_server_url,
        jwt_secret="test-secret-" + "x" * 40,
        admin_password_file=password_file,
        log_format="json",
    )
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(client: TestClient[Any]) -> dict[str, str]:
    """The bootstrap admin's headers, after its forced first password change."""
    first = _login(client, ADMIN_PASSWORD)
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": NEW_ADMIN_PASSWORD},
        headers=first,
    )
    assert changed.status_code == 204, changed.text
    return _login(client, NEW_ADMIN_PASSWORD)


def _login(client: TestClient[Any], password: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"username": "admin", "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@schema.parametrize()
@fuzzing
def test_no_input_gets_a_server_error(
    case: Case[Any], client: TestClient[Any], admin: dict[str, str]
) -> None:
    sent = case.as_transport_kwargs(base_url=str(client.base_url), headers=admin)
    body = sent.pop("data", None)
    response = client.request(
        sent["method"],
        sent["url"],
        params=sent.get("params"),
        headers=sent.get("headers"),
        cookies=sent.get("cookies"),
        json=sent.get("json"),
        content=body,
    )
    schema_checks.check_answer(case, response)

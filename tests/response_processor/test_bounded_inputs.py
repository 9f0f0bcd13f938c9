"""Inputs PostgreSQL cannot hold, and bodies the decoder cannot read, are 400s, never 500s."""

from __future__ import annotations

from typing import Any

import pytest

from tests.response_processor.conftest import Client

BIG = str(2**65)
PROFILE = {
    "name": "nul-types",
    "requests_per_minute": 60,
    "burst": 5,
    "allowed_request_types": ["echo"],
    "max_payload_bytes": 1000,
    "max_pending_requests": 5,
}
USER = {
    "username": "valid-name",
    "password": "a long and unusual passphrase 93",
    "roles": ["user"],
    "profile_type": "standard",
}


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        pytest.param("POST", f"/api/v1/dead-letters/{BIG}/retry", None, None, id="dead-letter-id"),
        pytest.param("GET", "/api/v1/dead-letters", {"after_id": BIG}, None, id="after_id"),
        pytest.param("GET", "/api/v1/audit", {"before_id": BIG}, None, id="before_id"),
        pytest.param("GET", "/api/v1/audit", {"before_id": "-" + BIG}, None, id="before_id-low"),
        pytest.param(
            "GET", "/api/v1/requests", {"before": "9999-12-31T23:00:00-05:00"}, None, id="before"
        ),
        pytest.param(
            "GET", "/api/v1/requests", {"before": "0001-01-01T00:00:00+05:00"}, None, id="year-0"
        ),
        pytest.param("GET", "/api/v1/audit", {"action": "a\x00b"}, None, id="action-nul"),
        pytest.param("GET", "/api/v1/users", {"after": "a\x00b"}, None, id="after-nul"),
        pytest.param("GET", "/api/v1/profile-types/a%00b", None, None, id="profile-name-nul"),
        pytest.param(
            "POST", "/api/v1/users", None, {**USER, "profile_type": "st\x00d"}, id="user-nul"
        ),
        pytest.param(
            "POST",
            "/api/v1/profile-types",
            None,
            {**PROFILE, "allowed_request_types": ["ec\x00ho"]},
            id="allowed-type-nul",
        ),
        pytest.param(
            "POST", "/api/v1/documents", None, [{"title": "a\x00", "body": "x"}], id="title-nul"
        ),
        pytest.param(
            "POST", "/api/v1/documents", None, [{"title": "a", "body": "\x00"}], id="body-nul"
        ),
    ],
)
async def test_values_postgresql_cannot_hold_are_validation_errors(
    client: Client,
    admin: dict[str, str],
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: Any,
) -> None:
    response = await client.request(method, path, params=params, json=body, headers=admin)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'[{"title": "\xff\xfe", "body": "x"}]', id="invalid-utf-8"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="nested-10000-deep"),
    ],
)
async def test_a_body_the_decoder_cannot_read_is_a_validation_error(
    client: Client, admin: dict[str, str], content: bytes
) -> None:
    response = await client.post(
        "/api/v1/users",
        content=content,
        headers={**admin, "content-type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"

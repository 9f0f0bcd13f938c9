"""Inputs PostgreSQL cannot hold, and bodies the decoder cannot read, are 400s, never 500s."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from tests.response_processor.conftest import Client

BIG = str(2**65)
ID = uuid.uuid4()
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
        pytest.param("GET", "/api/v1/audit", {"action": "a\x00b"}, None, id="action-nul"),
        pytest.param("GET", "/api/v1/users", {"cursor": "a\x00b"}, None, id="cursor-nul"),
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
    ("path", "key"),
    [
        pytest.param("/api/v1/dead-letters", f"[{BIG}]", id="dead-letter-id"),
        pytest.param("/api/v1/audit", f"[{BIG}]", id="audit-id"),
        pytest.param("/api/v1/audit", f"[-{BIG}]", id="audit-id-low"),
        pytest.param("/api/v1/requests", f'["9999-12-31T23:00:00-05:00", "{ID}"]', id="year-10000"),
        pytest.param("/api/v1/requests", f'["0001-01-01T00:00:00+05:00", "{ID}"]', id="year-0"),
        pytest.param("/api/v1/requests", f'["2026-01-01T00:00:00", "{ID}"]', id="no-offset"),
        pytest.param("/api/v1/users", '["a\\u0000b"]', id="username-nul"),
        pytest.param("/api/v1/users", "[1, 2]", id="wrong-shape"),
    ],
)
async def test_cursors_naming_what_postgresql_cannot_hold_are_invalid(
    client: Client, admin: dict[str, str], path: str, key: str
) -> None:
    cursor = base64.urlsafe_b64encode(key.encode()).decode()
    response = await client.get(path, params={"cursor": cursor}, headers=admin)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_cursor"


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

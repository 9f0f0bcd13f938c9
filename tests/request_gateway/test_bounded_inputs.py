"""Inputs PostgreSQL cannot hold, and bodies the decoder cannot read, are 400s, never 500s."""

from __future__ import annotations

import pytest

from tests.request_gateway.conftest import Client, MakeMember


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/api/v1/requests", {"cursor": "a\x00b"}, id="own-cursor-nul"),
        pytest.param("/api/v1/admin/requests", {"cursor": "a\x00b"}, id="admin-cursor-nul"),
        pytest.param("/api/v1/requests", {"limit": str(2**65)}, id="limit-beyond-int64"),
    ],
)
async def test_query_values_postgresql_cannot_hold_are_validation_errors(
    client: Client, make_member: MakeMember, path: str, params: dict[str, str]
) -> None:
    member = await make_member(roles=["user", "operator"])
    response = await client.get(path, params=params, headers=member.headers)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"type": "ec\\u0000ho", "payload": {}}', id="type-nul"),
        pytest.param(b'{"type": "echo", "payload": {"n": "\xff\xfe"}}', id="invalid-utf-8"),
        pytest.param(b'{"type": "echo", "payload": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
                     id="nested-10000-deep"),
    ],
)  # fmt: skip
async def test_a_submit_the_decoder_cannot_read_is_a_validation_error(
    client: Client, make_member: MakeMember, content: bytes
) -> None:
    member = await make_member()
    response = await client.post(
        "/api/v1/requests",
        content=content,
        headers={**member.headers, "content-type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"

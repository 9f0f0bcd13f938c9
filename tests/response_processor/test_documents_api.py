"""Bulk loading documents (a JSON array or JSON lines), listing and deleting them."""

from __future__ import annotations

import uuid

from tests.response_processor.conftest import Client


async def test_documents_load_as_an_array_or_as_json_lines(
    client: Client, admin: dict[str, str]
) -> None:
    array = [{"title": f"Doc {i}", "body": f"body number {i}"} for i in range(2000)]
    loaded = await client.post("/api/v1/documents", json=array, headers=admin)
    assert loaded.status_code == 201, loaded.text
    assert loaded.json()["inserted"] == 2000
    known = str(uuid.uuid4())
    lines = "\n".join(
        [
            f'{{"id": "{known}", "title": "First", "body": "x"}}',
            "",
            '{"title": "Second", "body": "y"}',
        ]
    )
    jsonl = await client.post(
        "/api/v1/documents",
        content=lines.encode(),
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert jsonl.status_code == 201, jsonl.text
    assert jsonl.json()["inserted"] == 2
    again = await client.post(
        "/api/v1/documents", json=[{"id": known, "title": "First, revised", "body": "z"}],
        headers=admin,
    )  # fmt: skip
    assert (again.json()["inserted"], again.json()["updated"]) == (0, 1)
    page = await client.get("/api/v1/documents?limit=5", headers=admin)
    assert len(page.json()["items"]) == 5
    assert (await client.delete(f"/api/v1/documents/{known}", headers=admin)).status_code == 204
    assert (await client.delete(f"/api/v1/documents/{known}", headers=admin)).status_code == 404


async def test_documents_page_by_id_behind_a_cursor(client: Client, admin: dict[str, str]) -> None:
    array = [{"title": f"Doc {i}", "body": "x"} for i in range(7)]
    assert (await client.post("/api/v1/documents", json=array, headers=admin)).status_code == 201
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 3}
    while True:
        page = (await client.get("/api/v1/documents", params=params, headers=admin)).json()
        seen += [document["id"] for document in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == 7
    assert seen == sorted(seen, key=uuid.UUID)
    refused = await client.get("/api/v1/documents", params={"cursor": "x"}, headers=admin)
    assert refused.json()["error"]["code"] == "invalid_cursor"


async def test_bad_documents_are_refused_with_the_line_that_is_wrong(
    client: Client, admin: dict[str, str]
) -> None:
    missing_title = await client.post("/api/v1/documents", json=[{"body": "x"}], headers=admin)
    assert missing_title.status_code == 400
    assert missing_title.json()["error"]["code"] == "validation_error"
    bad_line = await client.post(
        "/api/v1/documents",
        content=b'{"title": "ok", "body": "ok"}\n{"title": 5}\n',
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert bad_line.status_code == 400
    assert "line 2" in bad_line.text
    not_json = await client.post(
        "/api/v1/documents", content=b"[{", headers={**admin, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    same_id = str(uuid.uuid4())
    twice = await client.post(
        "/api/v1/documents",
        json=[
            {"id": same_id, "title": "a", "body": "b"},
            {"id": same_id, "title": "c", "body": "d"},
        ],
        headers=admin,
    )
    assert twice.status_code == 400
    assert twice.json()["error"]["code"] == "duplicate_document_id"


async def test_the_openapi_document_is_served(client: Client) -> None:
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/auth/login" in paths
    assert "/api/v1/documents" in paths

"""The OpenAPI document and the docs page every servicekit app gets (`servicekit.openapi`).

The rules are tested on a small app with one route of each kind (`tests.servicekit.docs_app`),
and what they make of the two services' real documents; the page is loaded by a real browser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from litestar.testing import TestClient
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from request_gateway.app import create_app as create_gateway
from request_gateway.settings import GatewaySettings
from response_processor.app import create_app as create_processor
from response_processor.settings import ProcessorSettings
from servicekit.openapi import DOCS_CONTENT_SECURITY_POLICY
from servicekit.testing import free_port as _free_port
from tests.servicekit import docs_app

ROOT = Path(__file__).resolve().parents[2]
ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _document(app: Any) -> dict[str, Any]:
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


DEMO = _document(docs_app.create_app())
GATEWAY = _document(create_gateway(GatewaySettings()))
PROCESSOR = _document(create_processor(ProcessorSettings(jwt_secret="x" * 64)))
SERVICES = {"gateway": GATEWAY, "processor": PROCESSOR}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield method.upper(), path, operation


def _errors(document: dict[str, Any], method: str, path: str) -> set[int]:
    responses = document["paths"][path][method.lower()]["responses"]
    return {int(status) for status in responses if int(status) >= 400}


# --- the error body ----------------------------------------------------------------------


def test_the_error_body_is_one_shared_component_in_the_shape_errors_leave_in() -> None:
    schemas = DEMO["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"] == {
        "error": {"$ref": "#/components/schemas/ErrorDetail"}
    }
    assert schemas["ErrorBody"]["required"] == ["error"]
    detail = schemas["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "details"}
    assert detail["properties"]["code"] == {"type": "string"}
    assert detail["properties"]["message"] == {"type": "string"}
    # A real error answer of the app validates against the component.
    with TestClient(docs_app.create_app()) as client:
        answer = client.post("/notes", json={"text": "a", "colour": "red"})
    assert answer.status_code == 400
    schema = {**ERROR_BODY_REF, "components": DEMO["components"]}
    jsonschema_rs.validate(schema, answer.json())


@pytest.mark.parametrize(
    ("method", "path", "errors"),
    [
        # A credential in the body (login): 401 and, being a password check, 429.
        ("POST", "/login", {400, 401, 408, 413, 429, 503}),
        # Authenticated and a current password to verify: a login attempt too.
        ("POST", "/password", {400, 401, 403, 408, 409, 413, 429, 503}),
        ("GET", "/notes", {401, 403, 503}),
        ("GET", "/notes/{note_id}", {400, 401, 403, 404, 503}),
        # A body, an Idempotency-Key (422) and queued work (202: rate limited).
        ("POST", "/notes", {400, 401, 403, 408, 409, 413, 422, 429, 503}),
        ("DELETE", "/admin/notes/{note_id}", {400, 401, 403, 404, 409, 503}),
    ],
)
def test_each_operation_documents_the_errors_it_can_answer(
    method: str, path: str, errors: set[int]
) -> None:
    assert _errors(DEMO, method, path) == errors


def test_operational_endpoints_keep_their_own_answers() -> None:
    assert _errors(DEMO, "GET", "/ping") == set()
    assert "security" not in DEMO["paths"]["/ping"]["get"]
    # An unhealthy /health answers 503 with its report, not an error body.
    unhealthy = DEMO["paths"]["/health"]["get"]["responses"]["503"]
    schema = unhealthy["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/HealthReport"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_of_every_operation_is_documented_with_the_shared_body(service: str) -> None:
    document = SERVICES[service]
    for method, path, operation in _operations(document):
        if not path.startswith("/api/"):
            continue  # operational endpoints: /health answers 503 with its report
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": ERROR_BODY_REF}}, (
                    method,
                    path,
                    status,
                )
                assert response["description"], (method, path, status)
        assert 503 in _errors(document, method, path), (method, path)
    # Litestar's own error body (`status_code`, `detail`) is described nowhere.
    assert '"status_code"' not in json.dumps(document)


@pytest.mark.parametrize(
    ("document", "method", "path", "errors"),
    [
        (GATEWAY, "POST", "/api/v1/auth/login", {400, 401, 429}),
        (GATEWAY, "POST", "/api/v1/requests", {400, 401, 403, 413, 422, 429}),
        (GATEWAY, "GET", "/api/v1/requests/{request_id}", {401, 403, 404}),
        (GATEWAY, "DELETE", "/api/v1/requests/{request_id}", {401, 403, 404, 409}),
        (GATEWAY, "POST", "/api/v1/api-keys", {400, 401, 403, 409}),
        (GATEWAY, "GET", "/api/v1/admin/requests", {400, 401, 403}),
        # The processor's address guard refuses with 403 before anything else, login included.
        (PROCESSOR, "POST", "/api/v1/auth/login", {400, 401, 403, 429}),
        (PROCESSOR, "POST", "/api/v1/auth/password", {400, 401, 403, 429}),
        (PROCESSOR, "POST", "/api/v1/users", {400, 401, 403, 409}),
        (PROCESSOR, "PATCH", "/api/v1/profile-types/{name}", {400, 401, 403, 404, 409}),
        (PROCESSOR, "POST", "/api/v1/documents", {400, 401, 403, 413}),
    ],
)
def test_the_services_document_what_their_routes_answer(
    document: dict[str, Any], method: str, path: str, errors: set[int]
) -> None:
    assert errors <= _errors(document, method, path)


# --- unknown fields ----------------------------------------------------------------------


def test_a_struct_that_forbids_unknown_fields_says_so() -> None:
    schemas = DEMO["components"]["schemas"]
    assert schemas["NoteIn"]["additionalProperties"] is False
    assert schemas["LoginIn"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["NoteOut"]


@pytest.mark.parametrize(
    ("service", "names"),
    [("gateway", {"RequestIn", "LoginIn", "RefreshIn", "ApiKeyIn"}), ("processor", {"LoginIn"})],
)
def test_the_services_request_bodies_are_closed(service: str, names: set[str]) -> None:
    schemas = SERVICES[service]["components"]["schemas"]
    for name in names:
        assert schemas[name]["additionalProperties"] is False, name


# --- security schemes --------------------------------------------------------------------


def test_the_credentials_are_declared_and_required_where_one_is() -> None:
    schemes = DEMO["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["bearer"]["description"],
    }
    assert schemes["apiKey"]["type"] == "apiKey"
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "X-API-Key")
    either: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    assert DEMO["paths"]["/notes"]["get"]["security"] == either
    assert DEMO["paths"]["/admin/notes/{note_id}"]["delete"]["security"] == either
    assert "security" not in DEMO["paths"]["/login"]["post"]


def test_the_gateway_takes_a_bearer_token_or_an_api_key_and_the_processor_a_bearer_token() -> None:
    gateway = GATEWAY["components"]["securitySchemes"]
    assert set(gateway) == {"bearer", "apiKey"}
    assert gateway["apiKey"]["name"] == "X-API-Key"
    assert set(PROCESSOR["components"]["securitySchemes"]) == {"bearer"}
    assert GATEWAY["paths"]["/api/v1/me"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert PROCESSOR["paths"]["/api/v1/users"]["get"]["security"] == [{"bearer": []}]
    for document in (GATEWAY, PROCESSOR):
        for method, path, operation in _operations(document):
            guarded = 401 in _errors(document, method, path) and "/auth/" not in path
            if path.startswith("/api/") and guarded:
                assert operation["security"], (method, path)
        assert "security" not in document["paths"]["/api/v1/auth/login"]["post"]


# --- the docs page -----------------------------------------------------------------------


class _Page(HTMLParser):
    """Every URL a page loads, its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls.extend(value for name, value in attrs if name in {"src", "href"} and value)
        if "style" in found or tag == "style" or any(name.startswith("on") for name in found):
            self.inline.append(tag)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


@pytest.fixture(scope="module")
def demo_client() -> Iterator[TestClient[Any]]:
    with TestClient(docs_app.create_app()) as client:
        yield client


def _page(client: TestClient[Any]) -> tuple[httpx.Response, _Page]:
    answer = client.get("/schema")
    page = _Page()
    page.feed(answer.text)
    return answer, page


def test_the_docs_page_loads_everything_from_the_app_under_a_strict_policy(
    demo_client: TestClient[Any],
) -> None:
    answer, page = _page(demo_client)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert page.urls
    assert all(url.startswith("/schema/assets/") for url in page.urls), page.urls
    assert page.inline == []
    policy = answer.headers["content-security-policy"]
    assert policy == DOCS_CONTENT_SECURITY_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe" not in policy
    assert "http" not in policy


@pytest.mark.parametrize(
    ("suffix", "content_type"),
    [(".js", "text/javascript"), (".css", "text/css"), (".png", "image/png")],
)
def test_the_page_assets_answer_from_the_package_with_their_content_type(
    demo_client: TestClient[Any], suffix: str, content_type: str
) -> None:
    _, page = _page(demo_client)
    urls = [url for url in page.urls if url.endswith(suffix)]
    assert urls
    for url in urls:
        answer = demo_client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].split(";")[0] == content_type, url
        name = url.rsplit("/", 1)[1]
        packaged = swagger_ui_path / name
        ours = ROOT / "libs/servicekit/src/servicekit/api_docs" / name
        assert answer.content == (packaged if packaged.is_file() else ours).read_bytes()


@pytest.mark.parametrize("name", ["index.html", "nothing.js", "..%2F..%2Fopenapi.py"])
def test_nothing_else_is_served_as_an_asset(demo_client: TestClient[Any], name: str) -> None:
    answer = demo_client.get(f"/schema/assets/{name}")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_the_cdn_pages_are_gone(demo_client: TestClient[Any]) -> None:
    for name in ("redoc", "elements", "rapidoc"):
        answer = demo_client.get(f"/schema/{name}")
        assert answer.status_code == 404
        assert "content-security-policy" in answer.headers
    assert demo_client.get("/schema/swagger").status_code == 200
    assert demo_client.get("/schema/openapi.json").json() == DEMO


@pytest.fixture(scope="module")
def served_demo() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.servicekit.docs_app:app", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the demo app did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_swagger_ui_renders_in_a_browser_under_the_policy(served_demo: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("this test drives a real browser: install chromium (apt-get install chromium)")
    rendered = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            # Anything not from the app would have to cross this proxy, which does not exist.
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{served_demo}/schema",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # Swagger UI ran (its script and styles loaded, the document fetched): the operations show.
    assert docs_app.TITLE in rendered
    for path in ("/notes", "/notes/{note_id}", "/admin/notes/{note_id}", "/login"):
        assert f'data-path="{path}"' in rendered, path


def test_an_app_asking_for_api_docs_without_the_web_extra_refuses_to_start_and_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The transfer agent installs plain servicekit: Swagger UI's assets are servicekit[web].
    from litestar import Litestar
    from litestar.openapi import OpenAPIConfig

    from servicekit import openapi
    from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin

    monkeypatch.setitem(sys.modules, "swagger_ui_bundle", None)  # as if not installed
    openapi._assets.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"install servicekit\[web\]"):
            Litestar(
                plugins=[ServiceKitPlugin(ServiceKitConfig(service="docs"))],
                openapi_config=OpenAPIConfig(title="docs", version="1"),
            )
        # Without API docs (the agent's app) nothing asks for the package.
        Litestar(plugins=[ServiceKitPlugin(ServiceKitConfig(service="agent"))], openapi_config=None)
    finally:
        openapi._assets.cache_clear()

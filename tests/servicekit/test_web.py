"""servicekit.web: pages with a strict policy, strict cookies, CSRF on every form, a new
session id at sign-in, our own static assets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.response import Redirect, Template
from litestar.stores.memory import MemoryStore
from litestar.testing import TestClient

from servicekit.errors import ApiError
from servicekit.middleware import PAGE_CONTENT_SECURITY_POLICY
from servicekit.plugin import ServiceKitConfig, ServiceKitPlugin
from servicekit.web import WebConfig, flash, page, renew_session, see_other
from servicekit.web.site import error_pages

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def make_app(tmp_path: Path, *, secure: bool) -> Litestar:
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "error.html").write_text("{{ title }}|{{ code }}|{{ message }}|{{ request_id }}")
    (templates / "form.html").write_text(
        '{% extends "web/base.html" %}{% block content %}<form method="post" action="/web/form">'
        "{{ csrf_input | safe }}<button>Go</button></form>{% endblock %}"
    )
    web = WebConfig(
        prefix="/web",
        secret="s" * 40,
        secure_cookies=secure,
        template_dirs=[templates],
        template_globals={"site_name": "Test"},
    )

    @get("/form")
    async def form(request: Request[Any, Any, Any]) -> Template:
        return page(request, "form.html")

    @post("/form")
    async def submit(request: Request[Any, Any, Any]) -> Redirect:
        flash(request, "posted")
        return see_other("/web/form")

    @post("/sign-in")
    async def sign_in(request: Request[Any, Any, Any]) -> Redirect:
        await renew_session(request, web, {"user": "someone"})
        return see_other("/web/form")

    @get("/missing")
    async def missing() -> None:
        raise ApiError(404, "request_not_found", "No such request.")

    @get("/api/thing")
    async def api() -> dict[str, str]:
        return {"a": "b"}

    return Litestar(
        route_handlers=[
            web.router([form, submit, sign_in, missing], exception_handlers=error_pages(page)),
            web.static_router(),
            api,
        ],
        template_config=web.template_config(),
        stores={web.session_store: MemoryStore()},
        plugins=[ServiceKitPlugin(ServiceKitConfig(service="test"))],
    )


def test_pages_get_the_page_policy_and_the_api_keeps_its_own(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, secure=False)) as client:
        response = client.get("/web/form")
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == PAGE_CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in PAGE_CONTENT_SECURITY_POLICY
        assert '<script src="/web/static/web.js" defer></script>' in response.text
        api = client.get("/api/thing")
        assert api.headers["content-security-policy"].startswith("default-src 'none';")
        assert "script-src" not in api.headers["content-security-policy"]


def test_an_anonymous_page_view_leaves_no_session_cookie(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, secure=False)) as client:
        response = client.get("/web/form")
        assert "airlock_session" not in response.headers.get("set-cookie", "")


def test_a_form_without_its_token_is_refused_and_with_it_accepted(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, secure=False)) as client:
        html = client.get("/web/form").text
        assert client.post("/web/form", data={}).status_code == 403
        match = CSRF.search(html)
        assert match is not None
        accepted = client.post("/web/form", data={"_csrf_token": match.group(1)})
        assert accepted.status_code == 200
        assert "posted" in accepted.text


def test_errors_are_pages_with_the_apis_status_and_code(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, secure=False)) as client:
        missing = client.get("/web/missing")
        assert missing.status_code == 404
        title, code, message, request_id = missing.text.split("|")
        assert (title, code, message) == ("Not found", "request_not_found", "No such request.")
        assert request_id == missing.headers["x-request-id"]
        refused = client.post("/web/form", data={})
        assert refused.status_code == 403
        assert refused.text.split("|")[1:3] == [
            "csrf_failed",
            "The form expired; go back, reload it and try again.",
        ]


def test_sign_in_issues_a_new_strict_secure_session_id(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, secure=True), base_url="https://testserver.local") as client:
        token = CSRF.search(client.get("/web/form").text)
        assert token is not None
        client.cookies.set("airlock_session", "planted-by-someone-else", path="/web")
        response = client.post(
            "/web/sign-in", data={"_csrf_token": token.group(1)}, follow_redirects=False
        )
        cookie = response.headers["set-cookie"]
        assert "planted-by-someone-else" not in cookie
        session_id = re.search(r"airlock_session=([0-9a-f]{64});", cookie)
        assert session_id is not None
        for attribute in ("HttpOnly", "Secure", "Path=/web"):
            assert attribute in cookie
        assert "samesite=strict" in cookie.lower()


def test_static_assets_are_ours_and_cacheable(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path, secure=False)) as client:
        css = client.get("/web/static/web.css")
        assert css.status_code == 200
        assert "max-age=3600" in css.headers["cache-control"]
        assert client.get("/web/static/../__init__.py").status_code == 404

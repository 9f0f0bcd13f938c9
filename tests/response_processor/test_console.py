"""The operator console over HTTP (no browser): sessions, CSRF, roles, and the audit rows
its pages leave, which are the API's own. The browser tests are in tests/browser/."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from tests.response_processor.conftest import (
    ADMIN_PASSWORD,
    NEW_ADMIN_PASSWORD,
    Client,
)

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def post_form(client: Client, path: str, fields: dict[str, Any], page: str | None = None):  # type: ignore[no-untyped-def]
    """Post a form as the browser would: the token from the page the form is on."""
    html = (await client.get(page or path)).text
    return await client.post(
        path, data={**fields, "_csrf_token": csrf_of(html)}, follow_redirects=False
    )


async def sign_in(client: Client, username: str, password: str) -> Any:
    return await post_form(client, "/console/login", {"username": username, "password": password})


async def test_first_sign_in_forces_the_password_change_then_opens_the_dashboard(
    client: Client, db: asyncpg.Connection[Any]
) -> None:
    assert (
        (await client.get("/console/", follow_redirects=False))
        .headers["location"]
        .startswith("/console/login")
    )
    response = await sign_in(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Path=/console" in cookie
    page = await client.get("/console/", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/password"
    changed = await post_form(
        client,
        "/console/password",
        {
            "current_password": ADMIN_PASSWORD,
            "new_password": NEW_ADMIN_PASSWORD,
            "confirm_password": NEW_ADMIN_PASSWORD,
        },
    )
    assert changed.status_code == 303, changed.text
    dashboard = await client.get("/console/")
    assert dashboard.status_code == 200, dashboard.text
    assert "Dashboard" in dashboard.text
    policy = dashboard.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    actions = [row["action"] for row in await db.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["login", "password_changed", "login"]


async def test_a_form_without_its_csrf_token_is_refused(client: Client) -> None:
    await client.get("/console/login")
    response = await client.post(
        "/console/login", data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 403
    assert "csrf_failed" in response.text

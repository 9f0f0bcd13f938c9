"""The operator console over HTTP (no browser): sessions, CSRF, roles, and the audit rows
its pages leave, which are the API's own. The browser tests are in tests/browser/."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import msgspec
from litestar.testing import AsyncTestClient

from response_processor.app import create_app
from response_processor.settings import ProcessorSettings
from tests.response_processor.conftest import (
    ADMIN_PASSWORD,
    NEW_ADMIN_PASSWORD,
    USER_PASSWORD,
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


async def console_admin(client: Client, *, changed_already: bool = False) -> None:
    """Sign the bootstrap admin in on the console, through its forced password change
    (unless the `admin` fixture made it through the API already)."""
    if changed_already:
        assert (await sign_in(client, "admin", NEW_ADMIN_PASSWORD)).status_code == 303
        return
    await sign_in(client, "admin", ADMIN_PASSWORD)
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


async def test_a_wrong_password_is_refused_and_audited_like_the_apis(
    client: Client, db: asyncpg.Connection[Any]
) -> None:
    response = await sign_in(client, "admin", "not the password at all")
    assert response.status_code == 401
    assert "The username or password is wrong." in response.text
    row = await db.fetchrow("SELECT action, details FROM audit_log ORDER BY id DESC LIMIT 1")
    assert row is not None
    assert row["action"] == "login_failed"


async def test_an_admin_creates_a_user_with_the_apis_rules_and_audit_row(
    client: Client, db: asyncpg.Connection[Any]
) -> None:
    await console_admin(client)
    fields = {"username": "carol", "password": "short", "roles": ["user"]}
    refused = await post_form(client, "/console/users/new", {**fields, "profile_type": "standard"})
    assert refused.status_code == 400
    assert "Use at least 12 characters." in refused.text
    created = await post_form(
        client,
        "/console/users/new",
        {
            **fields,
            "password": "carol's long password 1",
            "roles": ["user", "operator"],
            "profile_type": "standard",
        },
    )
    assert created.status_code == 303, created.text
    page = await client.get(created.headers["location"])
    assert "User carol created." in page.text
    row = await db.fetchrow(
        "SELECT actor_id, target, details FROM audit_log WHERE action = 'user_created'"
    )
    assert row is not None
    admin_id = await db.fetchval("SELECT id FROM app_user WHERE username = 'admin'")
    assert (row["actor_id"], row["target"]) == (admin_id, "user:carol")
    duplicate = await post_form(
        client,
        "/console/users/new",
        {
            **fields,
            "username": "CAROL",
            "password": "another long password 2",
            "profile_type": "standard",
        },
    )
    assert duplicate.status_code == 409
    assert "is taken" in duplicate.text


async def test_a_password_reset_ends_the_users_console_session(
    client: Client, settings: ProcessorSettings, make_member: Any
) -> None:
    member = await make_member(roles=["operator"])
    await console_admin(client, changed_already=True)
    async with AsyncTestClient(create_app(settings)) as other:
        assert (await sign_in(other, member.username, USER_PASSWORD)).status_code == 303
        assert (await other.get("/console/")).status_code == 200
        reset = await post_form(
            client,
            f"/console/users/{member.id}/password",
            {"password": "a brand new password 42"},
            page=f"/console/users/{member.id}",
        )
        assert reset.status_code == 303, reset.text
        assert reset.headers["location"] == f"/console/users/{member.id}"
        shown = await client.get(reset.headers["location"])
        assert "every session" in shown.text
        ended = await other.get("/console/", follow_redirects=False)
        assert ended.status_code == 303
        assert ended.headers["location"] == "/console/login?ended=true"


async def test_operators_see_and_retry_but_get_403_on_admin_pages(
    client: Client, make_member: Any, db: asyncpg.Connection[Any]
) -> None:
    member = await make_member(roles=["operator"])
    request_id = uuid.uuid4()
    await db.execute(
        """INSERT INTO request (id, user_id, type, payload, status, trace_id, created_at,
                                error_code, error_message, attempts)
           VALUES ($1, $2, 'echo', '{"n": 3}', 'failed', 't3', now(), 'handler_error',
                   'boom', 5)""",
        request_id,
        member.id,
    )
    letter_id = await db.fetchval(
        """INSERT INTO dead_letter (request, error_code, error_message, attempts)
           VALUES ($1, 'handler_error', 'boom', 5) RETURNING id""",
        request_id,
    )
    assert (await sign_in(client, member.username, USER_PASSWORD)).status_code == 303
    dashboard = await client.get("/console/")
    assert "Open dead letters" in dashboard.text
    assert "/console/audit" not in dashboard.text
    for path in ("/console/audit", "/console/users/new"):
        refused = await client.get(path)
        assert refused.status_code == 403, path
        assert "forbidden" in refused.text
    listing = await client.get("/console/dead-letters")
    assert "boom" in listing.text
    retried = await post_form(
        client,
        "/console/dead-letters/retry",
        {"id": [str(letter_id)]},
        page="/console/dead-letters",
    )
    assert retried.status_code == 303
    assert "1 dead letter(s) queued again." in (await client.get("/console/dead-letters")).text
    row = await db.fetchrow(
        "SELECT actor_id, target FROM audit_log WHERE action = 'dead_letter_retried'"
    )
    assert row is not None
    assert (row["actor_id"], row["target"]) == (member.id, f"request:{request_id}")
    user_page = await client.get(f"/console/users/{member.id}")
    assert user_page.status_code == 200
    assert "Reset password" not in user_page.text


async def test_every_page_renders_for_an_admin(client: Client) -> None:
    await console_admin(client)
    for path in (
        "/console/",
        "/console/users",
        "/console/profile-types",
        "/console/profile-types/standard",
        "/console/dead-letters",
        "/console/batches",
        "/console/documents?q=rain",
        "/console/audit",
    ):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert 'lang="en"' in response.text
    css = await client.get("/console/static/web.css")
    assert css.status_code == 200
    assert "max-age=3600" in css.headers["cache-control"]
    bad_time = await client.get("/console/audit?since=yesterday")
    assert bad_time.status_code == 400


async def test_signing_out_revokes_the_session_like_the_apis_logout(
    client: Client, db: asyncpg.Connection[Any]
) -> None:
    await console_admin(client)
    out = await post_form(client, "/console/logout", {}, page="/console/")
    assert out.status_code == 303
    assert (await client.get("/console/", follow_redirects=False)).status_code == 303
    row = await db.fetchrow("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1")
    assert row is not None
    assert row["action"] == "logout"


async def test_the_admin_address_allow_list_applies_to_the_console(
    settings: ProcessorSettings, db: asyncpg.Connection[Any]
) -> None:
    fenced = msgspec.structs.replace(settings, admin_allowed_networks=["10.20.0.0/16"])
    async with AsyncTestClient(create_app(fenced)) as client:
        for path in ("/console/login", "/console/"):
            response = await client.get(path, follow_redirects=False)
            assert response.status_code == 403, path
            assert "address_not_allowed" in response.text
    refused = await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'admin_access_refused'"
    )
    assert refused == 2

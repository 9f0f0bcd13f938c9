"""The user portal clicked through in Chromium against the demo stack: the demo user signs
in, submits `echo` and `documents.search`, and watches each complete without reloading
(the page follows it by itself); cancels one; API keys; keyboard-only submit; no serious
accessibility violation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tests.browser.test_console_browser import focus_on, no_serious_violations
from tests.demo.launcher import Launch

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def portal_url(demo: Launch) -> str:
    return f"{demo.gateway_origin}/portal"


def sign_in(page: Page, portal_url: str, credentials: dict[str, Any]) -> None:
    user = credentials["user"]
    page.goto(f"{portal_url}/login")
    page.get_by_label("Username").fill(user["username"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Welcome, {user['username']}")).to_be_visible()


def test_the_user_submits_and_watches_requests_complete(
    page: Page, portal_url: str, credentials: dict[str, Any]
) -> None:
    sign_in(page, portal_url, credentials)
    screenshot(page, "portal-home")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    for request_type, payload, answer in (
        ("echo", '{"hello": "from the browser"}', '"hello": "from the browser"'),
        ("documents.search", '{"query": "signature"}', '"total"'),
    ):
        page.get_by_role("link", name="Requests", exact=True).click()
        page.get_by_label("Type").select_option(request_type)
        page.get_by_label("Payload (JSON)").fill(payload)
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("status")).to_have_text("Request submitted.")
        # The page was made before the answer came: it follows the request's stream.
        expect(page.locator("#request[data-events]")).to_have_count(1)
        expect(page.locator("#request-pending")).to_have_text(
            "Not answered yet; this page follows the request live."
        )
        navigations.clear()
        page.evaluate("window.airlockSamePage = true")
        expect(page.locator("#request-status")).to_have_text("completed", timeout=60_000)
        expect(page.locator("#request-response")).to_contain_text(answer)
        expect(page.locator("#request-cancel")).to_have_count(0)
        # Nobody reloaded: no navigation, and the page's own state survived.
        assert navigations == []
        assert page.evaluate("window.airlockSamePage") is True
        screenshot(page, f"portal-{request_type}")
    page.get_by_role("link", name="Requests", exact=True).click()
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    statuses = page.locator("#request-list [data-status-of]").all_inner_texts()
    assert len(statuses) >= 2, statuses
    assert set(statuses) == {"completed"}, statuses
    page.get_by_label("Status").select_option("cancelled")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#request-list tbody")).to_have_text("No requests.")
    page.get_by_label("Payload (JSON)").fill("{not json")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text(re.compile("^Not valid JSON"))).to_be_visible()
    screenshot(page, "portal-requests")


def test_the_user_cancels_a_request_that_is_still_queued(
    page: Page, portal_url: str, credentials: dict[str, Any], demo: Launch
) -> None:
    sign_in(page, portal_url, credentials)
    page.get_by_role("link", name="Requests", exact=True).click()
    with exports_held(demo):  # it stays queued here until the cancel
        page.get_by_label("Type").select_option("echo")
        page.get_by_label("Payload (JSON)").fill('{"hello": "cancel me"}')
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("status")).to_have_text("Request submitted.")
        expect(page.locator("#request-status")).to_have_text("queued")
        page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this request?"
        page.locator("#request-cancel").get_by_role("button", name="Cancel").click()
        expect(page.get_by_role("status")).to_have_text("Request cancelled.")
        expect(page.locator("#request-status")).to_have_text("cancelled")
        expect(page.locator("#request-cancel")).to_have_count(0)
    screenshot(page, "portal-cancelled")
    page.get_by_role("link", name="All your requests").click()
    page.get_by_label("Status").select_option("cancelled")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#request-list [data-status-of]").all_inner_texts() == ["cancelled"]


@contextlib.contextmanager
def exports_held(demo: Launch) -> Iterator[None]:
    """The gateway's link workers frozen (SIGSTOP), at a moment when no transaction is open
    on the gateway's database (a frozen one would hold its locks), then let go on."""
    groups = [pid for name, pid in demo.child_pids().items() if name.startswith("gateway-worker")]
    assert groups, demo.child_pids()
    url = demo.child_env("gateway-api")["GATEWAY_DATABASE_URL"]
    deadline = time.monotonic() + 30
    while True:
        for group in groups:
            os.killpg(group, signal.SIGSTOP)
        if not _open_transactions(url):
            break
        for group in groups:
            os.killpg(group, signal.SIGCONT)
        assert time.monotonic() < deadline, "the gateway's workers never left their transactions"
        time.sleep(0.02)
    try:
        yield
    finally:
        for group in groups:
            os.killpg(group, signal.SIGCONT)


def _open_transactions(url: str) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(url)
        try:
            open_now: int = await connection.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()
                     AND backend_type = 'client backend' AND xact_start IS NOT NULL"""
            )
            return open_now
        finally:
            await connection.close()

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, count()).result()


def test_the_user_makes_and_revokes_an_api_key(
    page: Page, portal_url: str, credentials: dict[str, Any]
) -> None:
    sign_in(page, portal_url, credentials)
    page.get_by_role("link", name="API keys", exact=True).click()
    page.get_by_label("Name").fill("browser key")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_have_text(re.compile("^ak_"))
    screenshot(page, "portal-api-keys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke browser key").first.click()
    expect(page.get_by_role("status")).to_contain_text("revoked")


def test_the_portal_works_by_keyboard_and_has_no_serious_violations(
    page: Page, portal_url: str, credentials: dict[str, Any]
) -> None:
    user = credentials["user"]
    page.goto(f"{portal_url}/login")
    no_serious_violations(page, "portal login")
    focus_on(page, "f-username")
    page.keyboard.type(user["username"])
    page.keyboard.press("Tab")
    page.keyboard.type(user["password"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Welcome, {user['username']}")).to_be_visible()
    no_serious_violations(page, "portal home")
    page.goto(f"{portal_url}/requests")
    no_serious_violations(page, "portal requests")
    focus_on(page, "r-payload")
    page.keyboard.press("Control+A")
    page.keyboard.type('{"hello": "keyboard"}')
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Request submitted.")
    no_serious_violations(page, "portal request")
    page.goto(f"{portal_url}/api-keys")
    no_serious_violations(page, "portal api keys")

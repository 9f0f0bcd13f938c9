"""The operator console clicked through in Chromium, against the stack as `make demo`
starts it: an admin creates a profile type and a user; that user's forced first password
change; an operator retries a dead letter and is refused the admin pages; the main forms
by keyboard alone; no serious accessibility violation on any page. Every page visited is
kept as a screenshot in tests/browser/screenshots/ (not committed)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import screenshot
from tests.demo.launcher import Launch

pytestmark = pytest.mark.timeout(300)

PASSWORD: Final = "operator password 2026!"
NEW_PASSWORD: Final = "a fresher operator password 7"
SERIOUS: Final = {"serious", "critical"}


def sign_in(page: Page, console_url: str, username: str, password: str) -> None:
    page.goto(f"{console_url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def admin_token(demo: Launch, credentials: dict[str, Any]) -> str:
    admin = credentials["admin"]
    response = httpx.post(
        f"{demo.processor}/auth/login",
        json={"username": admin["username"], "password": admin["password"]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def operator(demo: Launch, credentials: dict[str, Any]) -> str:
    """An operator made through the API (no password change due)."""
    username = f"op{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{demo.processor}/users",
        json={
            "username": username,
            "password": PASSWORD,
            "roles": ["operator"],
            "profile_type": "standard",
        },
        headers={"Authorization": f"Bearer {admin_token(demo, credentials)}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return username


def make_dead_letter(demo: Launch) -> int:
    """A failed request and its dead letter, written as the worker writes them."""
    url = demo.child_env("processor-api")["PROCESSOR_DATABASE_URL"]

    async def insert() -> int:
        connection = await asyncpg.connect(url)
        try:
            user_id = await connection.fetchval("SELECT id FROM app_user WHERE username = 'demo'")
            request_id = uuid.uuid4()
            await connection.execute(
                """INSERT INTO request (id, user_id, type, payload, status, trace_id,
                                        created_at, error_code, error_message, attempts)
                   VALUES ($1, $2, 'echo', '{"hello": "again"}', 'failed', 'browser-test',
                           now(), 'handler_error', 'the handler gave up', 5)""",
                request_id,
                user_id,
            )
            dead_letter_id: int = await connection.fetchval(
                """INSERT INTO dead_letter (request, error_code, error_message, attempts)
                   VALUES ($1, 'handler_error', 'the handler gave up', 5) RETURNING id""",
                request_id,
            )
            return dead_letter_id
        finally:
            await connection.close()

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, insert()).result()


def no_serious_violations(page: Page, name: str) -> None:
    """axe-core (from its wheel) finds nothing serious or critical on the page."""
    results = Axe().run(page)
    serious = [
        f"{violation['id']}: {violation['help']} ({len(violation['nodes'])} nodes)"
        for violation in results.response["violations"]
        if violation.get("impact") in SERIOUS
    ]
    assert not serious, f"{name}: {serious}"


def test_an_admin_creates_a_profile_type_and_a_user_who_must_change_the_password(
    page: Page, console_url: str, credentials: dict[str, Any], tmp_path: Path
) -> None:
    admin = credentials["admin"]
    page.goto(f"{console_url}/")
    expect(page).to_have_url(f"{console_url}/login?next=%2Fconsole")
    screenshot(page, "login")
    sign_in(page, console_url, admin["username"], admin["password"])
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    screenshot(page, "dashboard")

    nav(page, "Profile types").click()
    page.get_by_label("Name", exact=True).fill("analysts")
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_label("Allowed request types").fill("echo, documents.search")
    page.get_by_role("button", name="Create profile type").click()
    expect(page.get_by_role("status")).to_have_text("Profile type analysts created.")
    expect(page.get_by_role("link", name="analysts")).to_be_visible()
    screenshot(page, "profile-types")

    nav(page, "Users").click()
    screenshot(page, "users")
    page.get_by_role("link", name="New user").click()
    page.get_by_label("Username").fill("analyst1")
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_label("operator").check()
    page.get_by_label("Profile type").select_option("analysts")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text("User analyst1 created.")
    expect(page.get_by_role("heading", name="User analyst1")).to_be_visible()
    screenshot(page, "user")

    nav(page, "Documents").click()
    upload = tmp_path / "documents.jsonl"
    upload.write_text(
        '{"title": "Browser notes", "body": "uploaded through the console in Chromium"}\n'
    )
    page.get_by_label("JSON-lines file").set_input_files(str(upload))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("Loaded: 1 new, 0 replaced.")).to_be_visible()
    page.get_by_label("Query").fill("chromium")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("1 document(s) match.")).to_be_visible()
    screenshot(page, "documents-search")

    nav(page, "Audit log").click()
    page.get_by_label("Action").select_option("user_created")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="user:analyst1")).to_be_visible()
    screenshot(page, "audit")
    for name in ("batches", "documents", "dead-letters"):
        page.goto(f"{console_url}/{name}")
        screenshot(page, name)

    # The new user's first sign-in goes to the password change, then to the console.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, console_url, "analyst1", PASSWORD)
    expect(page).to_have_url(f"{console_url}/password")
    no_serious_violations(page, "the password change due at first sign-in")
    screenshot(page, "password")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_have_text("Your password has been changed.")


def test_an_operator_retries_a_dead_letter_and_is_refused_the_admin_pages(
    page: Page, console_url: str, demo: Launch, operator: str
) -> None:
    dead_letter_id = make_dead_letter(demo)
    sign_in(page, console_url, operator, PASSWORD)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(nav(page, "Audit log")).to_have_count(0)
    nav(page, "Dead letters").click()
    page.get_by_label(f"Select dead letter {dead_letter_id}").check()
    page.get_by_role("button", name="Retry the selected").click()
    expect(page.get_by_role("status")).to_have_text("1 dead letter(s) queued again.")
    screenshot(page, "dead-letters-retried")
    nav(page, "Users").click()
    expect(page.get_by_role("link", name="New user")).to_have_count(0)
    for path in ("/audit", "/users/new"):
        response = page.goto(f"{console_url}{path}")
        assert response is not None
        assert response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    screenshot(page, "forbidden")


def test_the_main_forms_work_with_the_keyboard_alone(
    page: Page, console_url: str, operator: str
) -> None:
    page.goto(f"{console_url}/login")
    focus_on(page, "f-username")
    page.keyboard.type(operator)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The skip link comes first and moves the focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    # The search form: to the field, type, submit with Enter.
    page.goto(f"{console_url}/users")
    focus_on(page, "q")
    page.keyboard.type(operator[:4])
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name=operator)).to_be_visible()
    # Sign out is a form button reached by Tab.
    focus_on_text(page, "Sign out")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sign in to the operator console")).to_be_visible()


def test_an_admin_creates_a_user_with_the_keyboard_alone(
    page: Page, console_url: str, credentials: dict[str, Any]
) -> None:
    admin = credentials["admin"]
    sign_in(page, console_url, admin["username"], admin["password"])
    page.goto(f"{console_url}/users/new")
    focus_on(page, "f-username")
    page.keyboard.type("keyboarder")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    # Roles: user (ticked), operator, admin; Space ticks the one with the focus.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "user"
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-profile_type"
    focus_on_text(page, "Create user")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("User keyboarder created.")
    expect(page.get_by_text("user, operator")).to_be_visible()


def test_no_page_has_a_serious_accessibility_violation(
    page: Page, console_url: str, credentials: dict[str, Any]
) -> None:
    page.goto(f"{console_url}/login")
    no_serious_violations(page, "login")
    admin = credentials["admin"]
    sign_in(page, console_url, admin["username"], admin["password"])
    for path in (
        "/",
        "/users",
        "/users/new",
        "/profile-types",
        "/profile-types/standard",
        "/dead-letters",
        "/batches",
        "/documents?q=signature",
        "/audit",
        "/password",
    ):
        page.goto(f"{console_url}{path}")
        no_serious_violations(page, path)


def nav(page: Page, name: str) -> Locator:
    """A link of the console's navigation."""
    return page.get_by_role("navigation", name="Console").get_by_role("link", name=name)


def focus_on(page: Page, element_id: str, limit: int = 40) -> None:
    """Press Tab until the element with this id has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with Tab")


def focus_on_text(page: Page, text: str, limit: int = 40) -> None:
    """Press Tab until an element whose text starts with `text` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement && document.activeElement.textContent")
        if isinstance(focused, str) and focused.strip().startswith(text):
            return
    raise AssertionError(f"{text!r} cannot be reached with Tab")

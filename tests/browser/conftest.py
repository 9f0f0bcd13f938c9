"""The stack as `make demo` starts it, and a real Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.browser.chromium import FLAGS, ensure_chromium
from tests.demo.launcher import Launch, launch

SCREENSHOTS = Path(__file__).parent / "screenshots"
"""Every page the tests visit, as a PNG (not committed)."""


@pytest.fixture(scope="package")
def demo() -> Iterator[Launch]:
    # Not under pytest's temp folder: as root, PostgreSQL runs as the `pgserver` user, which
    # must traverse every folder above its data, and pytest keeps its own at mode 700.
    folder = Path(tempfile.mkdtemp(prefix="airlock-browser-"))
    run = launch(folder / "data", folder / "demo.out")
    try:
        run.wait_ready()
        yield run
    finally:
        run.kill_everything()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="package")
def console_url(demo: Launch) -> str:
    """The console's root on the demo's processor."""
    return demo.processor.removesuffix("/api/v1") + "/console"


@pytest.fixture(scope="package")
def credentials(demo: Launch) -> dict[str, Any]:
    return demo.credentials()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = ensure_chromium()
    browser = playwright.chromium.launch(
        executable_path=str(executable), headless=True, args=list(FLAGS)
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def screenshot(page: Page, name: str) -> None:
    """Keep what the page looks like now, as `screenshots/{name}.png`."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

"""Browser-test fixtures: one live desk and one Debian Chromium per session, a fresh context per page."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from live_desk import CHROMIUM, CHROMIUM_ARGS, LiveDesk
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright


@pytest.fixture(scope="session")
def live_desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDesk]:
    desk = LiveDesk(f"sqlite:///{tmp_path_factory.mktemp('desk') / 'callcard.db'}")
    desk.start()
    yield desk
    desk.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: Playwright's sync API keeps an event loop on the main thread while it runs,
    which would break the async tests of the modules that follow."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CALLCARD_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Debian chromium not found at {CHROMIUM}; run `make browser`")
        pytest.skip(f"Debian chromium not found at {CHROMIUM}; run `make browser`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_desk_page(browser: Browser, live_desk: LiveDesk) -> Iterator:  # type: ignore[type-arg]
    """Factory: a fresh browser context logged in as `login`, on /desk with its socket ready."""
    contexts: list[BrowserContext] = []

    def open_desk(login: str) -> Page:
        context = browser.new_context(base_url=live_desk.url, viewport={"width": 1360, "height": 860})
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=login]", login)
        page.fill("input[name=password]", live_desk.passwords[login])
        page.click("button[type=submit]")
        page.wait_for_url("**/desk")
        page.wait_for_selector("body[data-socket=ready]")
        return page

    yield open_desk
    for context in contexts:
        context.close()

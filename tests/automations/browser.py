"""Headless Chromium (Debian's ``chromium``, driven by Playwright) for the admin's browser tests: a page
fixture, logging in, waiting for the record pickers, and screenshots for review (``SCREENSHOTS_DIR``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pass-Word-123"  # noqa: S105 - the tests' own users
SCREEN = {"width": 1366, "height": 768}


def _browser_page(java_script_enabled: bool = True):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=SCREEN, java_script_enabled=java_script_enabled)
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.script_errors = errors
            yield page
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page():
    yield from _browser_page()


@pytest.fixture
def page_without_javascript():
    yield from _browser_page(java_script_enabled=False)


def login(page, live_server, username="root", password=PASSWORD):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))


def type_search(page, text, *, box="#id_record", url_part="/test/records/"):
    """Type into a record picker and wait for the search of the whole text to answer (the live server
    shares one SQLite connection between its threads: no request may still be running afterwards)."""
    page.fill(box, "")
    with page.expect_response(lambda response: url_part in response.url and response.url.endswith("q=" + quote(text))):
        page.type(box, text, delay=20)
    page.wait_for_load_state("networkidle")


def choose_record(page, record, typed=None, *, box="#id_record", url_part="/test/records/"):
    """Pick ``record`` in a record picker: type part of its name, click the match."""
    type_search(page, typed or record.data["name"].split()[0], box=box, url_part=url_part)
    page.click(f"{box}_results [data-record-id='{record.pk}']")
    assert page.locator(f"[data-record-picker]:has({box}) input[data-record-id]").input_value() == str(record.pk)


def screenshot(page, name: str) -> None:
    """The whole page at 1366 px wide, into ``$SCREENSHOTS_DIR/<name>.png`` when it is set."""
    folder = os.environ.get("SCREENSHOTS_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    # The window made as tall as the page, so that the sticky sidebar and sandboxed frames (emails) below the
    # fold are painted too; the width stays 1366 px.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": SCREEN["width"], "height": max(SCREEN["height"], height)})
    page.wait_for_timeout(200)
    page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
    page.set_viewport_size(SCREEN)


def fits_the_screen(page) -> bool:
    """Nothing on the page is wider than the window (no sideways scrolling at 1366 px)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

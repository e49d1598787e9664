"""Fixtures of the browser tests: the demo's data behind a Dagster UI, Debian's Chromium driven
by Playwright, the input's personal values, and the folder the screenshots go to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from rtcdp_dev.services import CHROMIUM_BINARY, REPO_ROOT, require_binary
from tests.browser.demo_ui import DemoUi, demo_ui
from tests.browser.personal_values import PersonalValueFinder, input_files, personal_values

# Where the pages' screenshots go for a person to look at (gitignored); RTCDP_SCREENSHOT_DIR
# points them elsewhere.
DEFAULT_SCREENSHOT_DIR = REPO_ROOT / "tests" / "browser" / "screenshots"
# How long a locator waits for the UI to show what it looks for: the first page loads the UI's
# scripts and the code location on two busy cores. Waiting ends as soon as the text is there.
UI_WAIT_MS = 60_000
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoUi]:
    data_dir = tmp_path_factory.mktemp("demo_ui")
    with demo_ui(data_dir, log_dir=tmp_path_factory.mktemp("webserver")) as served:
        yield served


@pytest.fixture(scope="module")
def personal(ui: DemoUi) -> PersonalValueFinder:
    files = input_files(ui.data_dir)
    values = personal_values(files)
    # The search must know the input: every kind of personal column of the sample is there.
    assert len(files) >= 12, files
    assert {"email", "phone", "name", "birth date", "external ID", "push token"} <= set(
        values.values()
    ), sorted(set(values.values()))
    return PersonalValueFinder(values)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_binary(CHROMIUM_BINARY, "Chromium (Debian package chromium)")
    expect.set_options(timeout=UI_WAIT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    folder = Path(os.environ.get("RTCDP_SCREENSHOT_DIR") or DEFAULT_SCREENSHOT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder

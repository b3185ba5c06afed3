"""Browser tests: Playwright driving Debian's Chromium against a real daemon seeded with known traces."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.browser.seed import XSS, seed
from tests.integration.daemon import ROOT, Daemon
from tests.waiting import wait_until

ARTIFACTS = Path(ROOT) / "test-artifacts" / "screenshots"

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"the browser tests need Chromium at {CHROMIUM}: run `make test` as root, or `sudo apt-get install chromium`",
        allow_module_level=True,
    )


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("browser") / "spans.duckdb").start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def seeded(daemon: Daemon) -> dict[str, str]:
    ids = seed(daemon.traces_url)

    def mapped() -> bool:
        body = httpx.get(f"{daemon.api_url}/api/service-map", timeout=10).json()
        names = {n["name"] for n in body["nodes"]}
        return {"bank-api", "withdraw", "accounts", "alerts", "notify", "client", XSS} <= names and len(
            body["edges"]
        ) >= 5

    wait_until(mapped, timeout_s=20, poll_s=0.3)  # the writer links new spans into the map every 2 s
    return ids


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API runs an event loop in this thread until it stops,
    # and later tests call asyncio.run().
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    opened.on("dialog", dismiss)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.dialogs = dialogs
    opened.errors = errors
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

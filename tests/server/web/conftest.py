from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_configure(config: pytest.Config) -> None:
    # Also registered in the root pyproject; kept here so this directory runs on its own.
    config.addinivalue_line("markers", "browser: needs Debian's Chromium at /usr/bin/chromium (CI provides it)")


class Chromium:
    """Launches a real headless Chromium with a fresh profile, on demand.

    Launched by the test after its servers are up: Playwright's sync API keeps an event loop running in this
    thread, after which the helpers that start servers (they use `asyncio.run`) could not run.
    """

    def __init__(self, profile: Path) -> None:
        self._profile = profile
        self._playwright: Playwright | None = None
        self._context: BrowserContext | None = None

    def launch(self) -> BrowserContext:
        if self._context is None:
            self._playwright = sync_playwright().start()
            self._context = self._playwright.chromium.launch_persistent_context(
                self._profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            self._context.set_default_timeout(15_000)
        return self._context

    def close(self) -> None:
        if self._context is not None:
            self._context.close()
        if self._playwright is not None:
            self._playwright.stop()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    """Skipped where Chromium is absent, failed in CI (where it must be installed)."""
    if not CHROMIUM.exists():
        message = "Chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()

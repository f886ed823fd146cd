"""The demo app under a cap that parallel requests share: shortened replies say so, the budget shows what is in use.

Real processes as in test_demo_app.py: `wattfare serve`, the demo app as its own uvicorn process (here with
its model and suggested cap set), and a real Chromium. The test keys connect a visitor at once, with the
demo's suggested cap as their monthly cap.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import chat, open_demo
from tests.server.web.servers import demo_port, demo_process, wattfare_server
from tests.support.standin_upstream import run_standin
from tests.support.wattfare_server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

# Claude Sonnet's price in the sandbox ($15/M output): the 4,096-token allowance ($0.061) does not fit 3 cents.
SONNET = "anthropic/claude-sonnet-4"
SHORTENED = "Answer shortened: your cap for this app is nearly used"


def demo(server: ServerProcess, port: int, log_dir: Path, *, model: str, cap_usd: str) -> AbstractContextManager[str]:
    """The demo app with test keys, chatting with `model` under a suggested cap of `cap_usd`."""
    return demo_process(server, "test", port, log_dir, DEMO_MODEL=model, DEMO_SUGGESTED_CAP_USD=cap_usd)


def connect(page: Page) -> None:
    page.click("[data-test=connect]")
    expect(page.locator("[data-test=budget]")).to_have_attribute("data-state", "connected")


def test_a_reply_the_cap_shortened_says_so_under_it(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with (
        wattfare_server(tmp_path, [demo_url]) as wattfare,
        demo(wattfare, port, tmp_path, model=SONNET, cap_usd="0.03"),
    ):
        page = open_demo(chromium.launch(), demo_url)
        connect(page)
        expect(page.locator("[data-test=budget-text]")).to_contain_text("$0.03 monthly cap: $0.03 left")

        chat(page, "Tell me about the sea")

        reply = page.locator("li[data-test=assistant]").last
        expect(reply).to_have_attribute("data-done", "true")
        expect(reply).to_have_attribute("data-clamped", "true")
        assert reply.inner_text().strip()
        # The notice is the item right under the reply it is about.
        notice = page.locator("li[data-test=assistant] + li[data-test=clamped]")
        expect(notice).to_have_text(SHORTENED)
        expect(page.locator("li[data-test=clamped]")).to_have_count(1)


def test_a_reply_the_cap_did_not_shorten_has_no_notice(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo(wattfare, port, tmp_path, model=SONNET, cap_usd="5"):
        page = open_demo(chromium.launch(), demo_url)
        connect(page)

        chat(page, "Tell me about the sea")

        reply = page.locator("li[data-test=assistant]").last
        expect(reply).to_have_attribute("data-done", "true")
        expect(reply).not_to_have_attribute("data-clamped", "true")
        expect(page.locator("li[data-test=clamped]")).to_have_count(0)


def test_the_budget_shows_what_a_running_reply_holds_then_lets_it_go(tmp_path: Path, chromium: Chromium) -> None:
    # `standin/slow`: 50 tokens 100 ms apart, so the reply holds its hold for five seconds.
    with run_standin(slow_delay=0.1) as standin:
        upstream = {
            "WATTFARE_UPSTREAM": "openai-compatible",
            "WATTFARE_UPSTREAM_URL": standin.base_url,
            "WATTFARE_UPSTREAM_KEY": "provider-key",
            "WATTFARE_TEST_UPSTREAM": "live",
        }
        port, demo_url = demo_port()
        with (
            wattfare_server(tmp_path, [demo_url], env=upstream) as wattfare,
            demo(wattfare, port, tmp_path, model="standin/slow", cap_usd="5"),
        ):
            page = open_demo(chromium.launch(), demo_url)
            connect(page)
            budget_text = page.locator("[data-test=budget-text]")
            expect(budget_text).to_have_text("Connected · Your $5.00 monthly cap: $5.00 left (test mode)")

            page.fill("[data-test=message]", "Take your time")
            page.click("[data-test=send]")

            # While the reply streams, what it holds is in use: its 4,096-token allowance ($0.008192) and its prompt.
            expect(budget_text).to_have_text(
                re.compile(r"^Connected · Your \$5\.00 monthly cap: \$4\.99 left · \$0\.008\d{3} in use")
            )
            reply = page.locator("li[data-test=assistant]").last
            expect(reply).to_have_attribute("data-done", "true", timeout=30_000)
            expect(budget_text).not_to_contain_text("in use")
            expect(budget_text).to_contain_text("left (test mode)")


def test_the_button_script_words_a_connection_status(tmp_path: Path, chromium: Chromium) -> None:
    with wattfare_server(tmp_path, []) as wattfare:
        page = chromium.launch().new_page()
        page.set_content(f'<!doctype html><title>app</title><script src="{wattfare.base_url}/wattfare.js"></script>')
        page.wait_for_function("() => window.Wattfare !== undefined")

        def words(status: dict[str, object] | None) -> str:
            return page.evaluate("(status) => Wattfare.budgetText(status)", status)

        assert words({"connected": True, "remainingUsd": 4.2, "reservedUsd": 0.3}) == "$4.20 left · $0.30 in use"
        assert words({"connected": True, "remainingUsd": 4.2, "reservedUsd": 0}) == "$4.20 left"
        assert words({"connected": True, "remainingUsd": 4.2}) == "$4.20 left"  # an older server says nothing held
        assert words({"connected": True, "remainingUsd": 1.9996}) == "$1.99 left"  # what is left rounds down
        assert words({"connected": True, "remainingUsd": 0.0042, "reservedUsd": 0.000123}) == (
            "$0.004200 left · $0.000123 in use"
        )
        assert words({"connected": True, "remainingUsd": None, "reservedUsd": 1.5}) == "No limit · $1.50 in use"
        assert words({"connected": False, "remainingUsd": None}) == "Not connected"
        assert words(None) == "Not connected"

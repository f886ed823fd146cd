"""One-time grants as a person meets them, in a real Chromium against real processes (as test_demo_app.py).

The demo's no-account rewriter (`/tool`) asks for a grant of 3 requests with `wattfare.requestGrant`: live keys
open Wattfare's grant popup, where the member signs up and approves; test keys get a grant at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import sign_up
from tests.server.web.looks import POPUP, look
from tests.server.web.servers import demo_port, demo_process, rows, wattfare_cli, wattfare_server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def open_tool(page: Page, demo_url: str) -> None:
    page.goto(f"{demo_url}/tool")
    expect(page.locator("[data-test=grant]")).to_have_attribute("data-state", "none")


def rewrite(page: Page, text: str) -> None:
    """Send a text to rewrite and wait until the answer (or the refusal) is shown."""
    page.fill("[data-test=text]", text)
    page.click("[data-test=rewrite-button]")
    expect(page.locator("[data-test=rewrite]")).not_to_have_attribute("data-sending", "true", timeout=30_000)


def approve_grant(popup: Page) -> None:
    expect(popup.locator("[data-test=grant-form]")).to_be_visible()
    with popup.expect_event("close"):
        popup.click("[data-test=approve]")


def test_a_member_allows_three_requests_uses_them_and_revokes_a_second_grant(
    tmp_path: Path, chromium: Chromium
) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo_process(wattfare, "live", port, tmp_path):
        browser = chromium.launch()
        page = browser.new_page()
        page.goto(demo_url)
        page.click("[data-test=tool-link]")
        expect(page.locator("[data-test=grant]")).to_have_attribute("data-state", "none")
        panel = page.locator("[data-test=grant-text]")

        with page.expect_popup() as opened:
            page.click("[data-test=allow]")
        popup = opened.value
        popup.set_viewport_size(POPUP)  # pyright: ignore[reportArgumentType]
        expect(popup.locator("[data-test=app-name]")).to_have_text("Test app")
        expect(popup.locator("[data-test=app-origin]")).to_have_text(demo_url)
        expect(popup.locator("[data-test=grant-requests]")).to_have_text("3")
        expect(popup.locator("[data-test=grant-cap]")).to_have_text("at most $0.05 in all")
        expect(popup.locator("[data-test=grant-expires]")).to_have_text("1 hour after you approve")
        look(popup, "grant-popup-sign-up", ("popup", "phone"))
        sign_up(popup, "gia@example.com")
        expect(popup.locator("[data-test=approve]")).to_be_focused()
        granted = wattfare_cli(wattfare, "credits", "grant", "gia@example.com", "1")
        assert granted.returncode == 0, granted.stdout + granted.stderr
        popup.reload()
        expect(popup.locator("[data-test=funding]")).to_contain_text("$1.00 available")
        look(popup, "grant-popup", ("popup", "phone"))
        approve_grant(popup)

        expect(page.locator("[data-test=grant]")).to_have_attribute("data-state", "active")
        expect(panel).to_have_text("Allowed · 3 requests left")
        answer = page.locator("[data-test=answer]")
        for count, left in ((1, "2 requests left"), (2, "1 request left"), (3, "0 requests left")):
            rewrite(page, f"please make this nicer, number {count}")
            expect(answer).to_have_attribute("data-done", str(count))
            assert answer.inner_text().strip()
            expect(panel).to_have_text(f"Allowed · {left}")
        look(page, "tool-grant-active", ("desktop", "phone"))
        rewrite(page, "one more, please")
        expect(page.locator("[data-test=grant]")).to_have_attribute("data-state", "ended")
        expect(page.locator("[data-test=grant]")).to_have_attribute("data-code", "grant_invalid")
        expect(panel).to_contain_text("Your grant has ended: This grant is used up")
        expect(answer).to_have_attribute("data-done", "3")  # nothing more was answered
        assert rows(wattfare.db_path, "SELECT requests_used, requests_allowed FROM grants") == [(3, 3)]

        # A second grant, approved by the signed-in member at once, then revoked from the account page.
        with page.expect_popup() as opened:
            page.click("[data-test=allow]")
        approve_grant(opened.value)
        expect(panel).to_have_text("Allowed · 3 requests left")
        account = browser.new_page()
        account.goto(f"{wattfare.base_url}/account")
        grants = account.locator("[data-test=grant]")
        expect(grants).to_have_count(2)
        expect(grants.first).to_have_attribute("data-state", "active")
        expect(grants.nth(1)).to_have_attribute("data-state", "used_up")
        expect(grants.nth(1).locator("[data-test=grant-requests]")).to_have_text("3 of 3")
        expect(account.locator("[data-test=no-connections]")).to_be_visible()  # grants are not connected apps
        look(account, "account-grants")
        grants.first.locator("[data-test=revoke-grant]").click()
        expect(account.locator("[data-test=notice]")).to_contain_text("Grant revoked")
        expect(grants.first).to_have_attribute("data-state", "revoked")
        rewrite(page, "after the revocation")
        expect(page.locator("[data-test=grant]")).to_have_attribute("data-state", "ended")
        expect(panel).to_contain_text("The member revoked this grant.")


def test_with_test_keys_a_grant_needs_no_popup_and_a_page_without_a_session_cannot_connect(
    tmp_path: Path, chromium: Chromium
) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo_process(wattfare, "test", port, tmp_path):
        page = chromium.launch().new_page()
        open_tool(page, demo_url)
        popups: list[Page] = []
        page.on("popup", lambda popup: popups.append(popup))
        page.click("[data-test=allow]")
        expect(page.locator("[data-test=grant]")).to_have_attribute("data-state", "active")
        assert popups == []
        rewrite(page, "make this nicer")
        expect(page.locator("[data-test=answer]")).to_have_attribute("data-done", "1")
        expect(page.locator("[data-test=grant-text]")).to_have_text("Allowed · 2 requests left (test mode)")
        [(member, mode)] = rows(wattfare.db_path, "SELECT member_id, mode FROM grants")
        assert (member, mode) == (None, "test")

        calls = page.evaluate(
            """(key) => {
                const wf = Wattfare.createWattfare({publishableKey: key});
                const code = (p) => p.then(() => "resolved", (error) => error.code);
                return Promise.all([code(wf.connect()), code(wf.status()), code(wf.disconnect()),
                                    code(wf.requestGrant({requests: 0}))]);
            }""",
            wattfare.app.publishable_keys["test"],
        )
        assert calls == ["invalid_request"] * 4

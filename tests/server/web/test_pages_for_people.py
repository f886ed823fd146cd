"""The human pages as a person meets them (issue 21): each page and state in words a person understands,
screenshot at desktop, popup and phone sizes (tests/server/web/looks.py), axe-clean, and usable by keyboard.

Real processes as in test_demo_app.py: `wattfare serve`, the demo app as its own uvicorn process, a real Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.server.web.conftest import Chromium
from tests.server.web.flows import approve_in_popup, chat, open_demo, sign_up
from tests.server.web.looks import POPUP, look
from tests.server.web.servers import demo_port, demo_process, wattfare_cli, wattfare_server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

SONNET = "anthropic/claude-sonnet-4"  # $15/M output in the sandbox: a 3-cent cap shortens its replies
RESETS = re.compile(r"It resets on \d{1,2} [A-Z][a-z]+ \d{4}\.")


def budget_text(page: Page) -> str:
    return page.locator("[data-test=budget-text]").inner_text()


def open_popup(page: Page) -> Page:
    with page.expect_popup() as opened:
        page.click("[data-test=connect]")
    popup = opened.value
    popup.set_viewport_size(POPUP)  # pyright: ignore[reportArgumentType]
    expect(popup.locator("[data-test=app-name]")).to_be_visible()
    return popup


def test_the_demo_and_the_popup_show_each_state_a_person_meets(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo_process(wattfare, "live", port, tmp_path):
        browser = chromium.launch()
        page = open_demo(browser, demo_url)
        budget = page.locator("[data-test=budget]")

        # Not connected: the button, and no developer error when a message is sent anyway.
        expect(budget).to_have_attribute("data-state", "not-connected")
        assert budget_text(page) == "Connect your AI budget to start chatting."
        expect(page.locator("[data-test=connect]")).to_have_text("Connect AI budget")
        look(page, "demo-not-connected")
        chat(page, "Hello before connecting")
        assert budget_text(page) == "Connect your AI budget to send your message: it is kept in the box below."
        expect(page.locator("[data-test=messages] li")).to_have_count(0)  # nothing left in the history
        expect(page.locator("[data-test=message]")).to_have_value("Hello before connecting")
        assert "demo_" not in page.locator("body").inner_text()  # the app's internal id never shows
        look(page, "demo-sent-before-connecting", ("desktop", "phone"))

        # The popup: Wattfare's identity on top, what it is, terms and privacy, and "Create account" above the fold.
        popup = open_popup(page)
        top = popup.locator(".popup-bar")
        expect(top.locator(".brand")).to_have_text("Wattfare")
        expect(top).to_contain_text("One AI budget for the apps you use")
        expect(popup.locator("a[href='/terms']")).to_be_visible()
        expect(popup.locator("a[href='/privacy']")).to_be_visible()
        create = popup.locator("[data-test=sign-up-form]")
        expect(create.locator("input[name=email]")).to_be_focused()  # focus lands on the first field
        create_button = create.locator("button[type=submit]").bounding_box()
        assert create_button is not None
        assert create_button["y"] + create_button["height"] <= POPUP["height"], "Create account is below the fold"
        look(popup, "popup-sign-up")

        # Signed in: who, and the way out; the cap field has the focus.
        sign_up(popup, "ada@example.com")
        expect(popup.locator("[data-test=cap]")).to_be_focused()
        expect(popup.locator("[data-test=signed-in-as]")).to_contain_text("Signed in as ada@example.com")
        expect(popup.locator("[data-test=sign-out]")).to_have_text("Not you? Sign out")
        approve = popup.locator("[data-test=approve]").bounding_box()
        assert approve is not None
        assert approve["y"] + approve["height"] <= POPUP["height"], "Approve is below the fold"
        look(popup, "popup-consent")
        popup.set_viewport_size(POPUP)  # pyright: ignore[reportArgumentType]

        # Declined.
        with popup.expect_event("close"):
            popup.click("[data-test=deny]")
        expect(budget).to_have_attribute("data-state", "declined")
        assert budget_text(page) == (
            "You declined, so this app cannot use your AI budget. You can connect it whenever you like."
        )
        expect(page.locator("[data-test=connect]")).to_be_visible()
        look(page, "demo-declined")

        # Connected, but nothing funds the budget yet: the funding problem, with where to fix it.
        popup = open_popup(page)
        approve_in_popup(popup, cap="2")
        expect(budget).to_have_attribute("data-state", "connected")
        chat(page, "Hello?")
        expect(budget).to_have_attribute("data-state", "funding-invalid")
        assert budget_text(page) == (
            "Your Wattfare budget has nothing to pay this reply with yet. "
            "Add credits or link a provider in Wattfare, then send again."
        )
        expect(page.locator("[data-test=manage]")).to_have_text("Add funding in Wattfare")
        expect(page.locator("[data-test=manage]")).to_have_attribute("href", f"{wattfare.base_url}/account")
        look(page, "demo-funding-problem")

        # Connected with what is left.
        granted = wattfare_cli(wattfare, "credits", "grant", "ada@example.com", "1")
        assert granted.returncode == 0, granted.stdout + granted.stderr
        chat(page, "Tell me something nice")
        expect(page.locator("li[data-test=assistant][data-done=true]")).to_have_count(1)
        expect(budget).to_have_attribute("data-state", "connected")
        expect(page.locator("[data-test=budget-text]")).to_have_text("Connected · Your $2.00 monthly cap: $1.99 left")
        expect(page.locator("[data-test=manage]")).to_have_text("Manage your budget")
        look(page, "demo-connected")

        # The account: money in two clear kinds, a chart whose label stays off the bars.
        account = browser.new_page()
        account.goto(f"{wattfare.base_url}/account")
        expect(account.locator("[data-test=credits]")).to_have_text("$0.99")  # $1 less a fraction of a cent
        expect(account.locator("[data-test=credits-detail]")).to_have_text(
            re.compile(r"^\$1\.00 granted · \$0\.00[0-9]*[1-9][0-9]? spent$")
        )
        spent = account.locator("[data-test=connection] [data-test=spent]").inner_text()
        assert re.fullmatch(r"\$0\.00[0-9]*[1-9][0-9]?", spent), spent  # sub-cent spend: two significant digits
        label = account.locator("[data-test=chart] text.scale").first.bounding_box()
        bar = account.locator("[data-test=chart] rect.bar").first.bounding_box()
        assert label is not None
        assert bar is not None
        assert label["x"] + label["width"] <= bar["x"], "the scale label overlaps a bar"
        look(account, "account-connected")

        # Revoked: no cap to edit, how to reconnect; the demo says so and offers Reconnect.
        account.locator("[data-test=revoke]").click()
        row = account.locator("[data-test=connection][data-app='Test app']")
        expect(row).to_have_attribute("data-state", "revoked")
        expect(row.locator("[data-test=save-cap], [data-test=revoke], input[name=monthlyUsd]")).to_have_count(0)
        expect(row.locator("[data-test=reconnect]")).to_contain_text(
            'To reconnect, open Test app and press its "Connect AI budget" button'
        )
        look(account, "account-revoked")
        chat(page, "Still there?")
        expect(budget).to_have_attribute("data-state", "revoked")
        assert budget_text(page) == "Access to your AI budget was turned off for this app. Reconnect it to chat again."
        expect(page.locator("[data-test=connect]")).to_have_text("Reconnect AI budget")
        look(page, "demo-revoked")

        # Remove: the revoked app leaves the member's list; its spend stays in the month's total.
        total = account.locator("[data-test=spend-total]").inner_text()
        account.reload()
        row.locator("[data-test=remove]").click()
        expect(account.locator("[data-test=connection][data-app='Test app']")).to_have_count(0)
        expect(account.locator("body")).to_contain_text("Removed from the list.")
        assert account.locator("[data-test=spend-total]").inner_text() == total
        look(account, "account-removed")


def test_the_demo_says_when_the_cap_shortened_an_answer(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with (
        wattfare_server(tmp_path, [demo_url]) as wattfare,
        demo_process(wattfare, "test", port, tmp_path, DEMO_MODEL=SONNET, DEMO_SUGGESTED_CAP_USD="0.03"),
    ):
        page = open_demo(chromium.launch(), demo_url)
        page.click("[data-test=connect]")
        expect(page.locator("[data-test=budget]")).to_have_attribute("data-state", "connected")
        chat(page, "Tell me about the sea")
        expect(page.locator("li[data-test=clamped]")).to_have_text(
            "Answer shortened: your cap for this app is nearly used"
        )
        look(page, "demo-answer-shortened")


def test_the_demo_says_when_the_cap_is_reached_when_it_resets_and_where_to_raise_it(
    tmp_path: Path, chromium: Chromium
) -> None:
    port, demo_url = demo_port()
    with (
        wattfare_server(tmp_path, [demo_url]) as wattfare,
        # A millionth of a dollar: not even the prompt of one request fits.
        demo_process(wattfare, "test", port, tmp_path, DEMO_MODEL=SONNET, DEMO_SUGGESTED_CAP_USD="0.000001"),
    ):
        page = open_demo(chromium.launch(), demo_url)
        page.click("[data-test=connect]")
        expect(page.locator("[data-test=budget]")).to_have_attribute("data-state", "connected")
        chat(page, "Tell me about the sea")
        expect(page.locator("[data-test=budget]")).to_have_attribute("data-state", "budget-exceeded")
        text = budget_text(page)
        assert text.startswith("You have used the whole monthly cap you set for this app. It resets on "), text
        assert RESETS.search(text), text
        raise_cap = page.locator("[data-test=manage]")
        expect(raise_cap).to_have_text("Raise your cap")
        expect(raise_cap).to_have_attribute("href", f"{wattfare.base_url}/account")
        expect(page.locator("[data-test=messages] li")).to_have_count(0)
        look(page, "demo-cap-reached")


def test_keyboard_alone_connects_signs_up_and_approves(tmp_path: Path, chromium: Chromium) -> None:
    port, demo_url = demo_port()
    with wattfare_server(tmp_path, [demo_url]) as wattfare, demo_process(wattfare, "live", port, tmp_path):
        page = open_demo(chromium.launch(), demo_url)
        keys = page.keyboard
        keys.press("Tab")
        expect(page.locator("[data-test=connect]")).to_be_focused()
        with page.expect_popup() as opened:
            keys.press("Enter")
        popup = opened.value
        email = popup.locator("[data-test=sign-up-form] input[name=email]")
        expect(email).to_be_focused()
        popup.keyboard.type("kay@example.com")
        popup.keyboard.press("Tab")
        expect(popup.locator("[data-test=sign-up-form] input[name=password]")).to_be_focused()
        popup.keyboard.type("correct horse battery staple")
        popup.keyboard.press("Enter")
        cap = popup.locator("[data-test=cap]")
        expect(cap).to_be_focused()
        popup.keyboard.press("Tab")
        expect(popup.locator("[data-test=approve]")).to_be_focused()
        with popup.expect_event("close"):
            popup.keyboard.press("Enter")
        expect(page.locator("[data-test=budget]")).to_have_attribute("data-state", "connected")
        expect(page.locator("[data-test=budget-text]")).to_contain_text("Your $5.00 monthly cap")
        assert wattfare.base_url


def _signed_up(browser: BrowserContext, base_url: str, path: str) -> Page:
    page = browser.new_page()
    page.goto(f"{base_url}{path}")
    sign_up(page, "dev@example.com")
    page.wait_for_url(f"{base_url}{path}")
    return page


def test_every_other_page_reads_well_copies_keys_and_answers_people_in_html(tmp_path: Path, chromium: Chromium) -> None:
    with wattfare_server(tmp_path, []) as wattfare:
        base = wattfare.base_url
        # API clients keep the JSON envelope; a person's browser gets a page.
        for path, accept in (("/nope", "application/json"), ("/api/v1/nope", "text/html"), ("/nope", "*/*")):
            answer = httpx.get(f"{base}{path}", headers={"Accept": accept})
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "invalid_request"
        browser = chromium.launch()
        browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = browser.new_page()
        answer = page.goto(f"{base}/no/such/page")
        assert answer is not None
        assert answer.status == 404
        assert answer.headers["content-type"].startswith("text/html")
        expect(page.locator("h1")).to_have_text("Page not found")
        look(page, "not-found")
        for path in ("/login", "/terms", "/privacy"):
            page.goto(f"{base}{path}")
            look(page, path.strip("/"))
        expect(page.locator("[data-test=never-stored]")).to_contain_text("Your prompts and the answers")

        page = _signed_up(browser, base, "/developers")
        look(page, "developers-empty")
        page.goto(f"{base}/account")
        look(page, "account-empty")
        page.goto(f"{base}/developers")
        form = page.locator("[data-test=register-form]")
        form.locator("input[name=name]").fill("Recipe bot")
        form.locator("textarea[name=origins]").fill("https://recipes.example.com")
        form.locator("button[type=submit]").click()
        secret = page.locator("[data-test=secret-live]")
        look(page, "developers-new-keys")
        # Keys never run out of their box: they break anywhere, and a Copy button copies them whole.
        for size in ("desktop", "phone"):
            page.set_viewport_size({"width": 1280 if size == "desktop" else 390, "height": 800})
            assert secret.evaluate("(code) => code.scrollWidth <= code.clientWidth")
        copy = page.locator("button[data-copy=secret-live]")
        expect(copy).to_have_text("Copy")
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == secret.inner_text()
        page.click("[data-test=continue]")
        expect(page.locator("[data-test=publishable-test]")).to_be_visible()
        look(page, "developers-app")
        page.goto(f"{base}/developers")
        look(page, "developers-list")

"""What a person does in the browser, step by step, shared by the browser tests."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from tests.server.web.servers import PASSWORD


def open_demo(context: BrowserContext, demo_url: str) -> Page:
    page = context.new_page()
    page.goto(demo_url)
    expect(page.locator("[data-test=budget]")).not_to_have_attribute("data-state", "checking")
    return page


def demo_user(context: BrowserContext, demo_url: str) -> str:
    """The demo app's id for this browser's user (its `appUserId` on Wattfare)."""
    # playwright's `Cookie` (typed for `add_cookies` too) makes every key optional; `cookies()` always sets these two.
    return next(c["value"] for c in context.cookies(demo_url) if c["name"] == "demo_user")  # pyright: ignore[reportTypedDictNotRequiredAccess]


def sign_up(page: Page, email: str, password: str = PASSWORD) -> None:
    form = page.locator("[data-test=sign-up-form]")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    form = page.locator("[data-test=sign-in-form]")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()


def chat(page: Page, message: str) -> None:
    """Send a message in the demo and wait until the reply ended (done, refused or failed)."""
    page.fill("[data-test=message]", message)
    page.click("[data-test=send]")
    expect(page.locator("[data-test=chat]")).not_to_have_attribute("data-sending", "true", timeout=30_000)


def approve_in_popup(popup: Page, cap: str | None = None) -> None:
    """Set the cap (if given) and press Approve; the popup reports to the app and closes itself."""
    expect(popup.locator("[data-test=consent-form]")).to_be_visible()
    if cap is not None:
        popup.fill("[data-test=cap]", cap)
    with popup.expect_event("close"):
        popup.click("[data-test=approve]")

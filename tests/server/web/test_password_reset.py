"""Forgotten passwords and the "an app was connected" email, in-process, with a real SMTP server receiving them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.server.web.pages_client import PASSWORD, PUBLIC_URL, Pages, approve, csrf_of, pages, sign_up
from tests.support.smtp_server import SmtpServer, smtp_server
from wattfare.server.access.keys import hash_key
from wattfare.server.instants import utc_now

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "a brand new passphrase"
_LINK = re.compile(re.escape(PUBLIC_URL) + r"/password/reset\?token=([A-Za-z0-9_-]+)")


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wattfare.db'}"


@pytest.fixture
def mail() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@asynccontextmanager
async def site_with_mail(database_url: str, mail: SmtpServer, clock: Clock | None = None) -> AsyncIterator[Pages]:
    async with pages(database_url, clock or utc_now, smtp_url=mail.url) as site:
        yield site


async def ask_for_reset(site: Pages, browser: httpx.AsyncClient, email: str) -> httpx.Response:
    """Ask for a reset link as a person would, then let the courier finish what the page handed it."""
    form = await browser.get("/password/forgot")
    answer = await browser.post("/password/forgot", data={"csrf": csrf_of(form), "email": email})
    await site.services.courier.drain()
    return answer


def tokens_in(mail: SmtpServer, email: str) -> list[str]:
    """The reset link's token of every email `email` received, oldest first."""
    tokens: list[str] = []
    for received in mail.to(email):
        assert received.message["Subject"] == "Reset your Wattfare password"
        match = _LINK.search(received.text)
        assert match is not None, received.text
        tokens.append(match.group(1))
    return tokens


def token_in(mail: SmtpServer, email: str) -> str:
    [token] = tokens_in(mail, email)
    return token


async def choose_password(
    browser: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD, again: str | None = None
) -> httpx.Response:
    form = await browser.get("/password/reset", params={"token": token})
    assert form.status_code == 200, form.text
    data = {"csrf": csrf_of(form), "token": token, "password": password, "password_again": again or password}
    return await browser.post("/password/reset", data=data)


async def sign_in(browser: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await browser.get("/login")
    return await browser.post("/login", data={"csrf": csrf_of(form), "email": email, "password": password})


async def test_a_reset_link_sets_the_password_ends_every_other_session_and_signs_this_browser_in(
    database_url: str, mail: SmtpServer
) -> None:
    async with (
        site_with_mail(database_url, mail) as site,
        site.browser() as first,
        site.browser() as second,
        site.browser() as forgetful,
    ):
        assert (await sign_up(first, "ada@example.com")).status_code == 303
        assert (await sign_in(second, "ada@example.com", PASSWORD)).status_code == 303
        assert (await second.get("/account")).status_code == 200

        asked = await ask_for_reset(site, forgetful, "Ada@Example.com")
        assert asked.status_code == 200
        assert "If an account exists for that address" in asked.text
        token = token_in(mail, "ada@example.com")
        # The database keeps the link's hash only.
        assert await site.services.store.password_reset_member(token, site.services.clock()) is None
        assert await site.services.store.password_reset_member(hash_key(token), site.services.clock()) is not None

        form = await forgetful.get("/password/reset", params={"token": token})
        assert "ada@example.com" in form.text
        done = await choose_password(forgetful, token)
        assert done.status_code == 303
        assert done.headers["location"] == "/account"
        account = await forgetful.get("/account")
        assert account.status_code == 200
        assert "ada@example.com" in account.text

        # Every session that existed before the reset is over.
        assert (await first.get("/account")).status_code == 303
        assert (await second.get("/account")).status_code == 303
        async with site.browser() as later:
            assert (await sign_in(later, "ada@example.com", PASSWORD)).status_code == 401
            assert (await sign_in(later, "ada@example.com", NEW_PASSWORD)).status_code == 303


async def test_a_reset_link_works_once(database_url: str, mail: SmtpServer) -> None:
    async with site_with_mail(database_url, mail) as site, site.browser() as browser:
        await sign_up(browser, "bob@example.com")
        await ask_for_reset(site, browser, "bob@example.com")
        token = token_in(mail, "bob@example.com")
        assert (await choose_password(browser, token)).status_code == 303

        again = await browser.get("/password/reset", params={"token": token})
        assert again.status_code == 400
        assert "already used or has expired" in again.text
        # The same form again, with this browser's current CSRF token (its session is the new one now).
        data = {
            "csrf": csrf_of(again),
            "token": token,
            "password": "yet another pass",
            "password_again": "yet another pass",
        }
        replay = await browser.post("/password/reset", data=data)
        assert replay.status_code == 400
        assert "already used or has expired" in replay.text
        async with site.browser() as later:
            assert (await sign_in(later, "bob@example.com", NEW_PASSWORD)).status_code == 303


async def test_a_newer_reset_spends_the_older_links_too(database_url: str, mail: SmtpServer) -> None:
    async with site_with_mail(database_url, mail) as site, site.browser() as browser:
        await sign_up(browser, "cy@example.com")
        await ask_for_reset(site, browser, "cy@example.com")
        await ask_for_reset(site, browser, "cy@example.com")
        first, second = tokens_in(mail, "cy@example.com")
        assert (await choose_password(browser, second)).status_code == 303
        assert (await browser.get("/password/reset", params={"token": first})).status_code == 400


async def test_an_unknown_email_gets_the_identical_answer_and_no_email(database_url: str, mail: SmtpServer) -> None:
    async with site_with_mail(database_url, mail) as site, site.browser() as member, site.browser() as stranger:
        await sign_up(member, "dee@example.com")
        known = await ask_for_reset(site, stranger, "dee@example.com")
        unknown = await ask_for_reset(site, stranger, "nobody@example.com")
        assert known.status_code == unknown.status_code == 200
        assert known.text.replace("dee@example.com", "@") == unknown.text.replace("nobody@example.com", "@")
        assert [r.recipients for r in mail.received] == [["dee@example.com"]]


async def test_an_expired_link_is_refused_with_a_page_not_an_error(database_url: str, mail: SmtpServer) -> None:
    clock = Clock()
    async with site_with_mail(database_url, mail, clock) as site, site.browser() as browser:
        await sign_up(browser, "eve@example.com")
        await ask_for_reset(site, browser, "eve@example.com")
        token = token_in(mail, "eve@example.com")
        form = await browser.get("/password/reset", params={"token": token})
        assert form.status_code == 200
        clock.now += timedelta(minutes=31)
        expired = await browser.get("/password/reset", params={"token": token})
        assert expired.status_code == 400
        assert "already used or has expired" in expired.text
        data = {"csrf": csrf_of(form), "token": token, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
        assert (await browser.post("/password/reset", data=data)).status_code == 400
        async with site.browser() as later:
            assert (await sign_in(later, "eve@example.com", PASSWORD)).status_code == 303


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 5000])
async def test_an_unknown_token_gets_a_400_page(sqlite_url: str, mail: SmtpServer, token: str) -> None:
    async with site_with_mail(sqlite_url, mail) as site, site.browser() as browser:
        answer = await browser.get("/password/reset", params={"token": token}, headers={"Accept": "text/html"})
        assert answer.status_code == 400
        assert "text/html" in answer.headers["content-type"]
        assert "Link used or expired" in answer.text


async def test_forms_without_their_csrf_token_are_refused_and_change_nothing(sqlite_url: str, mail: SmtpServer) -> None:
    async with site_with_mail(sqlite_url, mail) as site, site.browser() as browser:
        await sign_up(browser, "fay@example.com")
        forgot = await browser.post("/password/forgot", data={"email": "fay@example.com"})
        await site.services.courier.drain()
        assert forgot.status_code == 403
        assert mail.received == []
        await ask_for_reset(site, browser, "fay@example.com")
        token = token_in(mail, "fay@example.com")
        data = {"token": token, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
        assert (await browser.post("/password/reset", data=data)).status_code == 403
        assert (await browser.post("/password/reset", data=data | {"csrf": "forged"})).status_code == 403
        # The link is still good, and the password unchanged.
        assert (await browser.get("/password/reset", params={"token": token})).status_code == 200
        async with site.browser() as later:
            assert (await sign_in(later, "fay@example.com", PASSWORD)).status_code == 303


async def test_the_new_password_follows_the_sign_up_rules_and_is_typed_twice(sqlite_url: str, mail: SmtpServer) -> None:
    async with site_with_mail(sqlite_url, mail) as site, site.browser() as browser:
        await sign_up(browser, "gus@example.com")
        await ask_for_reset(site, browser, "gus@example.com")
        token = token_in(mail, "gus@example.com")
        short = await choose_password(browser, token, "short")
        assert short.status_code == 422
        assert "at least 10 characters" in short.text
        differ = await choose_password(browser, token, NEW_PASSWORD, "another new passphrase")
        assert differ.status_code == 422
        assert "differ" in differ.text
        # Refusals spend nothing: the link still works.
        assert (await choose_password(browser, token)).status_code == 303


async def test_reset_emails_to_one_address_are_capped_silently(sqlite_url: str, mail: SmtpServer) -> None:
    async with site_with_mail(sqlite_url, mail) as site, site.browser() as browser:
        await sign_up(browser, "hal@example.com")
        answers = [await ask_for_reset(site, browser, "hal@example.com") for _ in range(5)]
        assert {answer.status_code for answer in answers} == {200}
        assert len({answer.text for answer in answers}) == 1
        assert len(mail.to("hal@example.com")) == 3


async def test_the_sign_in_forms_link_to_forgot_password_and_the_consent_popup_opens_it_apart(
    sqlite_url: str, mail: SmtpServer
) -> None:
    async with site_with_mail(sqlite_url, mail) as site, site.browser() as browser:
        login = await browser.get("/login")
        assert re.search(r'<a href="/password/forgot" data-test="forgot-password">', login.text)
        popup = await browser.get("/connect", params={"session": await site.session_token("u-popup")})
        assert re.search(r'<a href="/password/forgot" data-test="forgot-password" target="_blank"', popup.text)
        assert 'data-test="sign-in-form"' in popup.text


async def test_approving_a_live_connection_emails_the_member_the_app_its_cap_and_the_account_link(
    database_url: str, mail: SmtpServer
) -> None:
    async with site_with_mail(database_url, mail) as site, site.browser() as browser:
        await sign_up(browser, "ivy@example.com")
        assert (await approve(browser, await site.session_token("u-live"), cap="7.50")).status_code == 200
        # A test-mode approval is not worth an email.
        assert (await approve(browser, await site.session_token("u-test", mode="test"), cap="3")).status_code == 200
        await site.services.courier.drain()
        [received] = mail.to("ivy@example.com")
    assert received.message["Subject"] == "Test app was connected to your Wattfare budget"
    assert "Test app may spend up to $7.50 a month" in received.text
    assert f"{PUBLIC_URL}/account" in received.text
    assert [r.recipients for r in mail.received] == [["ivy@example.com"]]

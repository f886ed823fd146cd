"""Password guessing is slowed per email and address, bounded per account, and never locks the owner out.

The server runs in-process on a clock the tests move; each browser has its own client address.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.server.web.pages_client import PASSWORD, Pages, csrf_of, pages, sign_up
from wattfare.server.web.sessions import KNOWN_BROWSER_COOKIE

pytestmark = pytest.mark.anyio

VICTIM = "victim@example.com"
OWNER_ADDRESS = "198.51.100.7"
ATTACKER_ADDRESS = "203.0.113.9"


class Clock:
    """The server's clock, moved by the test; it starts just after the turn of an hour (every window's start)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wattfare.db'}"


async def sign_in(browser: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await browser.get("/login")
    return await browser.post("/login", data={"csrf": csrf_of(form), "email": email, "password": password})


def signed_in(answer: httpx.Response) -> bool:
    """Whether the answer signed the browser in (a redirect that sets a session)."""
    cookies = answer.headers.get_list("set-cookie")
    return answer.status_code == 303 and any(value.startswith("wattfare_session=") for value in cookies)


async def owner_signed_up(site: Pages, email: str = VICTIM) -> None:
    async with site.browser(OWNER_ADDRESS) as owner:
        assert signed_in(await sign_up(owner, email))


# -- one address guessing one account


async def test_one_address_gets_5_guesses_a_minute_and_10_an_hour_then_waits_for_the_hour(
    sqlite_url: str, clock: Clock
) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(ATTACKER_ADDRESS) as attacker:
        await owner_signed_up(site)
        answers = [(await sign_in(attacker, VICTIM, f"guess {i}")).status_code for i in range(6)]
        assert answers == [401] * 5 + [429]
        refused = await sign_in(attacker, VICTIM, PASSWORD)
        assert refused.status_code == 429
        assert not signed_in(refused)
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert "Too many attempts. Wait a minute and try again." in refused.text
        clock.advance(minutes=1)
        answers = [(await sign_in(attacker, VICTIM, f"guess {i}")).status_code for i in range(6)]
        assert answers == [401] * 5 + [429]
        clock.advance(minutes=1)
        held = await sign_in(attacker, VICTIM, "guess again")
        assert held.status_code == 429
        assert int(held.headers["retry-after"]) > 60 * 57  # the rest of the hour
        # However fast it keeps trying, the address is checked no more password in that hour.
        guessed = 0
        for i in range(300):
            clock.advance(seconds=10)
            answer = await sign_in(attacker, VICTIM, f"guess {i}")
            assert not signed_in(answer)
            guessed += answer.status_code != 429
        assert clock.now < datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
        assert guessed == 0
        clock.advance(hours=1)
        assert (await sign_in(attacker, VICTIM, "a fresh hour")).status_code == 401


async def test_the_owner_signs_in_from_their_address_during_and_after_an_attack_from_another(
    sqlite_url: str, clock: Clock
) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(ATTACKER_ADDRESS) as attacker:
        await owner_signed_up(site)
        for i in range(60):  # 5 minutes of guessing as fast as it is let
            clock.advance(seconds=5)
            await sign_in(attacker, VICTIM, f"guess {i}")
        assert (await sign_in(attacker, VICTIM, PASSWORD)).status_code == 429
        # A browser that never signed in before, at the owner's address: a mistype, then the password.
        async with site.browser(OWNER_ADDRESS) as owner:
            assert (await sign_in(owner, VICTIM, "mistyped password")).status_code == 401
            assert signed_in(await sign_in(owner, VICTIM, PASSWORD))
            assert (await owner.get("/account")).status_code == 200
        clock.advance(minutes=5)
        assert (await sign_in(attacker, VICTIM, PASSWORD)).status_code == 429
        async with site.browser(OWNER_ADDRESS) as owner:
            assert signed_in(await sign_in(owner, VICTIM, PASSWORD))


async def test_the_owners_known_browser_signs_in_even_from_the_attackers_address(sqlite_url: str, clock: Clock) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(ATTACKER_ADDRESS) as owner:
        assert signed_in(await sign_up(owner, VICTIM))
        owner.cookies.delete("wattfare_session")  # signed out; the known-browser cookie stays
        async with site.browser(ATTACKER_ADDRESS) as attacker:  # the same NAT
            for i in range(12):
                await sign_in(attacker, VICTIM, f"guess {i}")
            assert (await sign_in(attacker, VICTIM, PASSWORD)).status_code == 429
        assert signed_in(await sign_in(owner, VICTIM, PASSWORD))


async def test_addresses_of_one_ipv6_64_share_one_budget(sqlite_url: str, clock: Clock) -> None:
    async with pages(sqlite_url, clock) as site:
        await owner_signed_up(site)
        answers: list[int] = []
        for i in range(1, 8):
            async with site.browser(f"2001:db8:1:2::{i:x}") as attacker:
                answers.append((await sign_in(attacker, VICTIM, f"guess {i}")).status_code)
        assert answers == [401] * 5 + [429] * 2
        async with site.browser("2001:db8:1:3::1") as neighbour:
            assert (await sign_in(neighbour, VICTIM, "another network")).status_code == 401


async def test_one_address_spraying_many_accounts_is_held_back_after_50_attempts(sqlite_url: str, clock: Clock) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(ATTACKER_ADDRESS) as attacker:
        answers = [(await sign_in(attacker, f"user{i}@example.com", "Password123!")).status_code for i in range(51)]
        assert answers == [401] * 50 + [429]
        async with site.browser(OWNER_ADDRESS) as elsewhere:
            assert (await sign_in(elsewhere, "user0@example.com", "Password123!")).status_code == 401


# -- many addresses guessing one account


async def distributed_attack(site: Pages, addresses: int) -> list[int]:
    """One wrong guess from each of `addresses` addresses; the statuses answered."""
    statuses: list[int] = []
    for i in range(addresses):
        async with site.browser(f"10.0.{i // 200}.{i % 200 + 1}") as attacker:
            statuses.append((await sign_in(attacker, VICTIM, f"guess {i}")).status_code)
    return statuses


async def test_guessing_from_many_addresses_is_bounded_at_30_per_account_every_10_minutes(
    sqlite_url: str, clock: Clock
) -> None:
    async with pages(sqlite_url, clock) as site:
        await owner_signed_up(site)
        clock.advance(minutes=10)  # the sign-up was an attempt too: start on a fresh window
        assert await distributed_attack(site, 100) == [401] * 30 + [429] * 70
        clock.advance(minutes=5)
        assert await distributed_attack(site, 40) == [429] * 40
        clock.advance(minutes=5)  # the next window: 30 more, no more
        assert await distributed_attack(site, 40) == [401] * 30 + [429] * 10


async def test_during_a_distributed_attack_the_owners_known_browser_signs_in_and_a_new_one_waits_minutes(
    sqlite_url: str, clock: Clock
) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(OWNER_ADDRESS) as known:
        assert signed_in(await sign_up(known, VICTIM))
        known.cookies.delete("wattfare_session")
        assert 429 in await distributed_attack(site, 40)
        assert signed_in(await sign_in(known, VICTIM, PASSWORD))
        async with site.browser(OWNER_ADDRESS) as new_browser:
            waiting = await sign_in(new_browser, VICTIM, PASSWORD)
            assert waiting.status_code == 429
            assert int(waiting.headers["retry-after"]) <= 10 * 60
            clock.advance(seconds=int(waiting.headers["retry-after"]))
            assert signed_in(await sign_in(new_browser, VICTIM, PASSWORD))


async def test_a_known_browser_gets_5_guesses_a_minute_and_10_an_hour_too(sqlite_url: str, clock: Clock) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(OWNER_ADDRESS) as known:
        assert signed_in(await sign_up(known, VICTIM))
        known.cookies.delete("wattfare_session")
        answers = [(await sign_in(known, VICTIM, f"guess {i}")).status_code for i in range(6)]
        assert answers == [401] * 5 + [429]
        clock.advance(minutes=1)
        answers = [(await sign_in(known, VICTIM, f"guess {i}")).status_code for i in range(6)]
        assert answers == [401] * 5 + [429]


@pytest.mark.parametrize("forgery", ["made up", "another email's", "an id shifted into the email"])
async def test_a_known_browser_cookie_not_issued_for_the_email_bypasses_nothing(
    sqlite_url: str, clock: Clock, forgery: str
) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(ATTACKER_ADDRESS) as attacker:
        await owner_signed_up(site)
        # The attacker's own account; its local part ends where the victim's email begins.
        assert signed_in(await sign_up(attacker, "mallory:" + VICTIM))
        own = attacker.cookies[KNOWN_BROWSER_COOKIE]
        browser_id, _, mac = own.partition(".")
        cookie = {
            "made up": "A" * 22 + "." + "0" * 64,
            "another email's": own,
            # The MAC covers "<id>:<email>": "<id>:mallory" + "victim@…" is the very text it covered.
            "an id shifted into the email": f"{browser_id}:mallory.{mac}",
        }[forgery]
        assert 429 in await distributed_attack(site, 40)
        async with site.browser("192.0.2.1") as forger:
            forger.cookies.set(KNOWN_BROWSER_COOKIE, cookie)
            assert (await sign_in(forger, VICTIM, PASSWORD)).status_code == 429


# -- what the answers reveal


async def test_the_throttle_answers_alike_for_a_taken_and_a_free_email(sqlite_url: str, clock: Clock) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(ATTACKER_ADDRESS) as attacker:
        await owner_signed_up(site)
        answers: dict[str, list[httpx.Response]] = {}
        for email in (VICTIM, "nobody@example.com"):
            answers[email] = [await sign_in(attacker, email, f"guess {i}") for i in range(6)]
        taken, free = answers[VICTIM], answers["nobody@example.com"]
        assert [a.status_code for a in taken] == [a.status_code for a in free] == [401] * 5 + [429]
        for mine, theirs in zip(taken, free, strict=True):
            assert mine.text.replace(VICTIM, "EMAIL") == theirs.text.replace("nobody@example.com", "EMAIL")
            assert mine.headers.get("retry-after") == theirs.headers.get("retry-after")


async def test_signing_up_with_a_taken_email_and_its_password_signs_in_like_a_new_account(
    sqlite_url: str, clock: Clock
) -> None:
    async with pages(sqlite_url, clock) as site:
        async with site.browser(OWNER_ADDRESS) as first:
            new = await sign_up(first, VICTIM)
        async with site.browser(OWNER_ADDRESS) as second:
            again = await sign_up(second, VICTIM)
            assert signed_in(new)
            assert signed_in(again)
            assert again.headers["location"] == new.headers["location"] == "/account"
            assert VICTIM in (await second.get("/account")).text


async def test_signing_up_with_a_taken_email_and_another_password_answers_as_a_failed_sign_in(
    database_url: str, clock: Clock
) -> None:
    async with pages(database_url, clock) as site, site.browser(ATTACKER_ADDRESS) as stranger:
        await owner_signed_up(site)
        before = await site.services.store.member_credentials(VICTIM)
        refused_sign_up = await sign_up(stranger, VICTIM, "another password entirely")
        refused_sign_in = await sign_in(stranger, VICTIM, "another password entirely")
        assert refused_sign_up.status_code == refused_sign_in.status_code == 401
        assert refused_sign_up.text == refused_sign_in.text
        assert not signed_in(refused_sign_up)
        assert await site.services.store.member_credentials(VICTIM) == before


async def test_sign_ups_count_as_guesses_so_they_cannot_get_around_the_throttle(sqlite_url: str, clock: Clock) -> None:
    async with pages(sqlite_url, clock) as site, site.browser(ATTACKER_ADDRESS) as attacker:
        await owner_signed_up(site)
        answers = [(await sign_up(attacker, VICTIM, f"guess number {i}")).status_code for i in range(5)]
        assert answers == [401] * 5
        for attempt in (sign_up, sign_in):
            held = await attempt(attacker, VICTIM, PASSWORD)
            assert held.status_code == 429
            assert not signed_in(held)


@pytest.mark.parametrize("email", ["a\x00b@example.com", "ab@example.com\x00", "a\x7fb@example.com", "a\u2028b@x.co"])
async def test_an_email_with_a_control_character_is_refused_as_no_email_on_every_store(
    database_url: str, email: str
) -> None:
    async with pages(database_url) as site, site.browser() as browser:
        assert (await sign_up(browser, email)).status_code == 422
        assert (await sign_in(browser, email, PASSWORD)).status_code == 401

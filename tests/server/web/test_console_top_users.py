"""The console's usage card: the month's biggest spenders, how many spent and what in all, and where the rest is.

The card reads counters and the ledger of the users it lists, never the app's whole month, so its cost does not
grow with the app (tests/server/store/test_console_usage.py checks the statements; benchmarks measure them).
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.server.web.pages_client import Pages, pages, sign_up
from wattfare.metering import window_containing
from wattfare.server.store.grant_records import NewGrant
from wattfare.server.store.records import Endpoint, Mode, NewHold, Settlement
from wattfare.server.text_formats import date_text, usd_text
from wattfare.server.web import developers

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = window_containing(NOW)
CAP = 10**12
CENT = 10_000_000
_ROW = re.compile(r'<tr data-test="usage-row">(.*?)</tr>', re.S)
_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
_TAG = re.compile(r"<[^>]+>")


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def owned_app(site: Pages, email: str) -> str:
    """An app owned by a member signed up as `email` (on the site's shared browser)."""
    found = await site.services.store.member_credentials(email)
    assert found is not None
    app_id = f"app_{uuid.uuid4().hex[:12]}"
    await site.services.store.create_app(app_id, "Top users", CAP, NOW, owner_member_id=found.member.id)
    return app_id


async def spend(
    site: Pages,
    connection_id: str,
    cost: int,
    at: datetime = NOW,
    endpoint: Endpoint = "chat.completions",
    grant_id: str | None = None,
) -> None:
    """One request of `connection_id` settled at `at` for `cost`, in the window of `at`."""
    store = site.services.store
    expires = at + timedelta(minutes=15)
    key = window_containing(at).key
    hold = NewHold(f"req_{uuid.uuid4().hex}", connection_id, key, cost, "m", at, expires, endpoint, grant_id)
    assert await store.try_reserve(hold)
    await store.settle(Settlement(hold.id, cost, prompt_tokens=12, completion_tokens=3), at)


async def user(site: Pages, app_id: str, name: str, mode: Mode = "test") -> str:
    connection = await site.services.store.approve_connection(f"c_{mode}_{name}", app_id, name, mode, CAP, NOW)
    return connection.id


def usage_rows(page: str) -> list[list[str]]:
    """The usage table's rows, each cell as its text."""
    return [
        [" ".join(html.unescape(_TAG.sub("", cell)).split()) for cell in _CELL.findall(row)]
        for row in _ROW.findall(page)
    ]


def summary(page: str) -> str:
    found = re.search(r'<p data-test="usage-summary">(.*?)</p>', page, re.S)
    assert found is not None, page
    return " ".join(html.unescape(_TAG.sub("", found.group(1))).split())


async def test_the_card_lists_the_biggest_spenders_and_counts_everyone_who_spent(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(developers, "TOP_USERS", 3)
    async with pages(database_url, Clock(NOW)) as site, site.browser() as browser:
        await sign_up(browser, "dev@example.com")
        app_id = await owned_app(site, "dev@example.com")
        store = site.services.store
        dan = await user(site, app_id, "dan")
        await spend(site, dan, 40 * CENT)
        await spend(site, dan, 30 * CENT, endpoint="embeddings")
        for name in ("cat", "bea", "abe"):  # a three-way tie: by app user id
            await spend(site, await user(site, app_id, name), 30 * CENT)
        await spend(site, await user(site, app_id, "eve"), 1 * CENT)
        grant = await store.create_grant(
            NewGrant("gr_top", "c_grant", app_id, "test", None, "hash", 5, None, NOW, NOW + timedelta(days=1)), CAP
        )
        await spend(site, grant.connection_id, 90 * CENT, grant_id=grant.id)
        # A member whose provider refused them at the ceiling: listed, with nothing spent, beyond the top three.
        assert await store.create_member("mem_mia", "mia@example.com", "$argon2id$x", NOW) is not None
        await store.approve_member_connection("c_mia", app_id, "mia-user", "test", CAP, "mem_mia", NOW)
        await store.record_ceiling_hit("mem_mia", WINDOW.key, NOW)
        # Live, and last month's test spend, are other cards.
        await spend(site, await user(site, app_id, "liv", "live"), 500 * CENT)
        await spend(site, await user(site, app_id, "old"), 900 * CENT, at=WINDOW.start - timedelta(seconds=1))

        page = (await browser.get(f"/developers/apps/{app_id}")).text
        live = (await browser.get(f"/developers/apps/{app_id}", params={"mode": "live"})).text

    rows = usage_rows(page)
    assert [row[0] for row in rows] == [
        "one-time grant gr_top",
        "dan",
        "abe",
        "mia-user provider ceiling reached",
    ]
    assert rows[1] == ["dan", "2", "24", "6", usd_text(70 * CENT), f"{usd_text(30 * CENT)} (1 requests)"]
    assert rows[2][1:5] == ["1", "12", "3", usd_text(30 * CENT)]
    assert rows[3][1:6] == ["0", "0", "0", usd_text(0), "none"]
    assert page.count('data-test="ceiling-reached"') == 1
    total = usd_text((90 + 70 + 30 * 3 + 1) * CENT)
    assert summary(page) == (
        f"6 users spent {total} since {date_text(WINDOW.start)}. The 3 who spent most are listed; 3 more spent less."
    )
    assert "<code>GET /api/v1/usage</code>" in page
    assert "old" not in [row[0] for row in rows]

    assert [row[0] for row in usage_rows(live)] == ["liv"]
    assert summary(live) == f"1 user spent {usd_text(500 * CENT)} since {date_text(WINDOW.start)}."


async def test_a_new_month_starts_an_empty_card(database_url: str) -> None:
    clock = Clock(WINDOW.end - timedelta(minutes=1))
    async with pages(database_url, clock) as site, site.browser() as browser:
        await sign_up(browser, "dev@example.com")
        app_id = await owned_app(site, "dev@example.com")
        await spend(site, await user(site, app_id, "ann"), 5 * CENT, at=clock.now)

        before = (await browser.get(f"/developers/apps/{app_id}")).text
        clock.now = WINDOW.end + timedelta(minutes=1)
        after = (await browser.get(f"/developers/apps/{app_id}")).text
        await spend(site, await user(site, app_id, "bob"), 2 * CENT, at=clock.now)
        later = (await browser.get(f"/developers/apps/{app_id}")).text

    assert [row[0] for row in usage_rows(before)] == ["ann"]
    assert summary(before) == f"1 user spent {usd_text(5 * CENT)} since {date_text(WINDOW.start)}."
    assert usage_rows(after) == []
    assert f"No test usage since {date_text(WINDOW.end)}." in after
    assert 'data-test="usage-summary"' not in after
    assert [row[0] for row in usage_rows(later)] == ["bob"]
    assert summary(later) == f"1 user spent {usd_text(2 * CENT)} since {date_text(WINDOW.end)}."


async def test_users_stopped_at_the_provider_ceiling_are_listed_up_to_the_cap_and_the_rest_counted(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(developers, "TOP_USERS", 2)
    async with pages(database_url, Clock(NOW)) as site, site.browser() as browser:
        await sign_up(browser, "dev@example.com")
        app_id = await owned_app(site, "dev@example.com")
        store = site.services.store
        await spend(site, await user(site, app_id, "payer"), 3 * CENT)
        for name in ("kim", "lee", "max"):
            assert await store.create_member(f"mem_{name}", f"{name}@example.com", "$argon2id$x", NOW) is not None
            await store.approve_member_connection(f"c_{name}", app_id, name, "test", CAP, f"mem_{name}", NOW)
            await store.record_ceiling_hit(f"mem_{name}", WINDOW.key, NOW)
        await spend(site, "c_lee", 1 * CENT)

        page = (await browser.get(f"/developers/apps/{app_id}")).text

    assert [row[0] for row in usage_rows(page)] == [
        "payer",
        "lee provider ceiling reached",
        "kim provider ceiling reached",
    ]
    assert summary(page) == f"2 users spent {usd_text(4 * CENT)} since {date_text(WINDOW.start)}."
    unlisted = re.search(r'data-test="ceiling-unlisted">([^<]+)<', page)
    assert unlisted is not None
    assert unlisted.group(1) == "1 more user reached the provider ceiling this month."

"""Operator credits: ledger-backed, reserved together with the cap in one transaction, never overdrawn.

The cap stays the binding guarantee: a request is admitted only if it fits BOTH the connection's cap and the
member's credits, in one transaction (either guard failing writes nothing), and settling charges both in one
transaction. So neither counter can pass its limit, under any concurrency, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.server.web.pages_client import approve, pages, sign_up
from wattfare.server.store import Store, open_store
from wattfare.server.store.account_records import CreditBalance
from wattfare.server.store.records import NewHold, Settlement

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = "2026-11"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    member = await store.create_member("mem_a", "a@example.com", "$argon2id$x", NOW)
    assert member is not None
    try:
        yield store
    finally:
        await store.close()


def hold(connection_id: str, amount: int, *, ttl: int = 900) -> NewHold:
    return NewHold(f"req_{uuid.uuid4().hex}", connection_id, WINDOW, amount, "m", NOW, NOW + timedelta(seconds=ttl))


async def connection(store: Store, cap: int) -> str:
    made = await store.approve_member_connection("c1", "app_a", "u1", "live", cap, "mem_a", NOW)
    return made.id


async def counters(store: Store) -> tuple[int, int]:
    snapshot = await store.budget("app_a", "live", "u1", WINDOW)
    assert snapshot is not None
    return snapshot.spent, snapshot.reserved


async def test_a_credited_hold_takes_cap_and_credits_together_or_neither(store: Store) -> None:
    conn = await connection(store, cap=1000)
    await store.grant_credits("mem_a", 500, "test", NOW)
    assert await store.try_reserve_credited(hold(conn, 400), "mem_a")
    assert await store.credit_balance("mem_a") == CreditBalance(500, 0, 400)
    # Fits the cap (600 left) but not the credits (100 left): nothing is written anywhere.
    assert not await store.try_reserve_credited(hold(conn, 200), "mem_a")
    assert await counters(store) == (0, 400)
    assert await store.credit_balance("mem_a") == CreditBalance(500, 0, 400)
    # Fits the credits once more are granted, but not the cap: nothing written either.
    await store.grant_credits("mem_a", 10_000, "more", NOW)
    assert not await store.try_reserve_credited(hold(conn, 601), "mem_a")
    assert await counters(store) == (0, 400)
    assert await store.credit_balance("mem_a") == CreditBalance(10_500, 0, 400)


async def test_settling_charges_the_credits_once_in_the_same_transaction(store: Store) -> None:
    conn = await connection(store, cap=1000)
    await store.grant_credits("mem_a", 800, "test", NOW)
    charged, released = hold(conn, 300), hold(conn, 200)
    assert await store.try_reserve_credited(charged, "mem_a")
    assert await store.try_reserve_credited(released, "mem_a")
    assert await store.settle(Settlement(charged.id, 120), NOW) is not None
    assert await store.settle(Settlement(released.id, 0, kind="released"), NOW) is not None
    assert await store.settle(Settlement(charged.id, 120), NOW) is None  # exactly once
    assert await store.credit_balance("mem_a") == CreditBalance(800, 120, 0)
    assert await counters(store) == (120, 0)
    assert await store.ledger_total(conn, WINDOW) == 120


async def test_a_dead_credited_hold_is_swept_and_charged_to_the_credits_too(store: Store) -> None:
    conn = await connection(store, cap=1000)
    await store.grant_credits("mem_a", 800, "test", NOW)
    dead = hold(conn, 250, ttl=1)
    assert await store.try_reserve_credited(dead, "mem_a")
    [expired] = await store.expired_holds(NOW + timedelta(seconds=5))
    await store.settle(Settlement(expired.id, expired.amount, kind="expired"), NOW)
    assert await store.credit_balance("mem_a") == CreditBalance(800, 250, 0)


async def test_concurrent_credited_holds_never_overdraw_the_credits_or_the_cap(store: Store) -> None:
    conn = await connection(store, cap=5_000)
    await store.grant_credits("mem_a", 1_000, "test", NOW)
    results = await asyncio.gather(*(store.try_reserve_credited(hold(conn, 30), "mem_a") for _ in range(60)))
    assert sum(results) == 33  # 33 x 30 = 990 <= 1000 < 34 x 30
    balance = await store.credit_balance("mem_a")
    assert balance.reserved == 990
    assert balance.available == 10
    assert await counters(store) == (0, 990)


async def test_funding_of_a_connection_follows_its_member(store: Store) -> None:
    conn = await connection(store, cap=1000)
    funding = await store.connection_funding(conn)
    assert funding is not None
    assert (funding.member_id, funding.provider_key, funding.credits_available) == ("mem_a", None, 0)
    await store.grant_credits("mem_a", 70, "test", NOW)
    assert (await store.connection_funding(conn)).credits_available == 70  # type: ignore[union-attr]
    plain = await store.approve_connection("c2", "app_a", "u2", "live", 1000, NOW)
    assert await store.connection_funding(plain.id) is None  # approved by no member: the operator funds it


# -- through the proxy


async def test_a_member_without_funding_gets_funding_invalid_and_with_credits_is_charged(tmp_path: Path) -> None:
    async with pages(f"sqlite:///{tmp_path / 'w.db'}") as site, site.browser() as browser:
        await sign_up(browser, "quinn@example.com")
        await approve(browser, await site.session_token("quinn-user"), "5")
        refused = await site.complete("quinn-user")
        assert refused.status_code == 402
        assert refused.json()["error"]["code"] == "funding_invalid"
        assert refused.headers["x-should-retry"] == "false"
        member = await site.services.store.member_credentials("quinn@example.com")
        assert member is not None
        await site.services.store.grant_credits(member.member.id, 1_000_000, "test", datetime.now(UTC))  # $0.001
        served = await site.complete("quinn-user")
        assert served.status_code == 200, served.text
        cost = Decimal(served.headers["wattfare-cost-usd"])
        balance = await site.services.store.credit_balance(member.member.id)
        assert Decimal(balance.spent) / 10**9 == cost > 0
        assert balance.reserved == 0


async def test_when_credits_are_the_tighter_limit_they_bind_and_the_cap_when_it_is(tmp_path: Path) -> None:
    async with pages(f"sqlite:///{tmp_path / 'w.db'}") as site, site.browser() as browser:
        await sign_up(browser, "rosa@example.com")
        await approve(browser, await site.session_token("rosa-user"), "5")
        member = await site.services.store.member_credentials("rosa@example.com")
        assert member is not None
        await site.services.store.grant_credits(member.member.id, 20_000, "test", datetime.now(UTC))  # $0.00002
        outcomes: list[str] = []
        for _ in range(40):
            answer = await site.complete("rosa-user", max_tokens=5)
            outcomes.append("ok" if answer.status_code == 200 else answer.json()["error"]["code"])
            if answer.status_code != 200:
                break
        assert outcomes[-1] == "funding_invalid"  # the credits ran out, the $5 cap did not
        assert "ok" in outcomes
        balance = await site.services.store.credit_balance(member.member.id)
        assert balance.spent <= balance.granted
        # Now the cap binds: a tiny cap with ample credits ends in budget_exceeded, credits to spare.
        await site.services.store.grant_credits(member.member.id, 10**9, "more", datetime.now(UTC))
        await approve(browser, await site.session_token("rosa-user"), "0.00002")
        codes: list[str] = []
        for _ in range(40):
            answer = await site.complete("rosa-user", max_tokens=5)
            if answer.status_code != 200:
                codes.append(answer.json()["error"]["code"])
                break
        assert codes == ["budget_exceeded"]
        status = await site.status("rosa-user")
        assert Decimal(str(status["spentUsd"])) <= Decimal("0.00002")


async def test_test_mode_never_touches_credits(tmp_path: Path) -> None:
    async with pages(f"sqlite:///{tmp_path / 'w.db'}") as site:
        assert (await site.complete("tess", mode="test")).status_code == 200
        rows = await site.services.store.connection_funding(
            (await site.services.store.get_connection(site.app.app.id, "test", "tess")).id  # type: ignore[union-attr]
        )
        assert rows is None

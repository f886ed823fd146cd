"""Every store keeps the same contract; SQLite and PostgreSQL run the same tests.

The cap guarantee rests on two statements per store (reserve, settle), so those are attacked directly
here with many concurrent callers, below the HTTP layer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from wattfare.server.store import Store, open_store
from wattfare.server.store.records import NewHold, Settlement

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = "2026-11"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    await store.create_app("app_b", "B", 10_000, NOW)
    try:
        yield store
    finally:
        await store.close()


def new_hold(connection_id: str, amount: int, *, created: datetime = NOW, ttl: int = 900) -> NewHold:
    return NewHold(
        f"req_{uuid.uuid4().hex}", connection_id, WINDOW, amount, "m", created, created + timedelta(seconds=ttl)
    )


async def test_migrations_are_idempotent(store: Store) -> None:
    assert await store.upgrade() == []


async def test_the_ledger_books_what_each_hold_says_it_called_whoever_settles_it(store: Store) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    chat = new_hold(conn.id, 100)
    embedding = replace(new_hold(conn.id, 100), model="e", endpoint="embeddings")
    dead = replace(new_hold(conn.id, 100, created=NOW - timedelta(hours=1), ttl=60), model="e", endpoint="embeddings")
    for hold in (chat, embedding, dead):
        assert await store.try_reserve(hold)
    assert [(h.id, h.endpoint) for h in await store.expired_holds(NOW)] == [(dead.id, "embeddings")]

    await store.settle(Settlement(chat.id, 10, prompt_tokens=1, completion_tokens=2), NOW)
    await store.settle(Settlement(embedding.id, 20, prompt_tokens=20), NOW)
    await store.settle(Settlement(dead.id, dead.amount, kind="expired"), NOW)  # as the sweep settles it

    rows = await store.usage("app_a", "test", None, NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert [(r.model, r.endpoint, r.requests, r.prompt_tokens, r.cost) for r in rows] == [
        ("e", "embeddings", 2, 20, 120),
        ("m", "chat.completions", 1, 1, 10),
    ]


async def test_a_hold_that_fits_is_held_and_one_that_does_not_is_refused(store: Store) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    assert await store.try_reserve(new_hold(conn.id, 600))
    assert not await store.try_reserve(new_hold(conn.id, 401))
    assert await store.try_reserve(new_hold(conn.id, 400))
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert (snapshot.spent, snapshot.reserved, snapshot.remaining) == (0, 1000, 0)


async def test_settling_swaps_the_hold_for_the_charge_once_and_never_charges_above_the_hold(store: Store) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    hold = new_hold(conn.id, 500)
    assert await store.try_reserve(hold)
    settled = await store.settle(Settlement(hold.id, 900, prompt_tokens=3, completion_tokens=4), NOW)
    assert settled is not None
    assert (settled.spent, settled.reserved, settled.charged) == (500, 0, 500)
    assert await store.settle(Settlement(hold.id, 1), NOW) is None  # exactly once
    assert await store.ledger_total(conn.id, WINDOW) == 500
    rows = await store.usage("app_a", "test", None, NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert [(r.app_user_id, r.requests, r.prompt_tokens, r.completion_tokens, r.cost) for r in rows] == [
        ("u1", 1, 3, 4, 500)
    ]


async def test_a_revoked_connection_cannot_reserve(store: Store) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "live", 1000, NOW)
    assert await store.revoke_connection("app_a", "live", "u1", NOW) is not None
    assert not await store.try_reserve(new_hold(conn.id, 1))
    assert await store.connection_states([conn.id]) == {conn.id: "revoked"}


async def test_test_and_live_connections_and_apps_are_apart(store: Store) -> None:
    await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    assert await store.get_connection("app_a", "live", "u1") is None
    assert await store.get_connection("app_b", "test", "u1") is None
    assert await store.revoke_connection("app_b", "test", "u1", NOW) is None
    connection = await store.get_connection("app_a", "test", "u1")
    assert connection is not None
    assert connection.state == "active"


async def test_ensure_connection_keeps_an_existing_one_even_when_revoked(store: Store) -> None:
    await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    await store.revoke_connection("app_a", "test", "u1", NOW)
    kept = await store.ensure_connection("c2", "app_a", "u1", "test", 5, NOW)
    assert (kept.id, kept.state, kept.cap) == ("c1", "revoked", 1000)


async def test_expired_holds_are_listed_for_the_sweeper(store: Store) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    dead = new_hold(conn.id, 100, created=NOW - timedelta(hours=1), ttl=60)
    alive = new_hold(conn.id, 100)
    assert await store.try_reserve(dead)
    assert await store.try_reserve(alive)
    assert [r.id for r in await store.expired_holds(NOW)] == [dead.id]


async def test_secrets_are_set_once(store: Store) -> None:
    assert await store.put_secret_if_absent("k", "first") == "first"
    assert await store.put_secret_if_absent("k", "second") == "first"
    assert await store.get_secret("k") == "first"


async def test_rebuilding_counters_from_the_ledger_repairs_drift(store: Store, database_url: str) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    hold = new_hold(conn.id, 300)
    assert await store.try_reserve(hold)
    await store.settle(Settlement(hold.id, 250), NOW)
    assert await store.rebuild_counters() == 0
    # Corrupt the derived counter behind the store's back, then rebuild it from the ledger.
    other = open_store(database_url)
    if database_url.startswith("sqlite"):
        other._db.execute("UPDATE counters SET spent = 7")  # type: ignore[attr-defined]
    else:
        async with other._conn() as db:  # type: ignore[attr-defined]
            await db.execute("UPDATE counters SET spent = 7")
    await other.close()
    assert await store.rebuild_counters() == 1
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert snapshot.spent == 250


async def test_concurrent_holds_never_hold_more_than_the_cap(store: Store) -> None:
    """200 racing reserve/settle cycles against one small cap: spent + reserved never passes it."""
    cap = 10_000
    conn = await store.approve_connection("c1", "app_a", "u1", "test", cap, NOW)

    async def cycle(i: int) -> bool:
        hold = new_hold(conn.id, 300 + i % 7)
        if not await store.try_reserve(hold):
            return False
        await asyncio.sleep(0)
        await store.settle(Settlement(hold.id, 150 + i % 11), NOW)
        return True

    results = await asyncio.gather(*(cycle(i) for i in range(200)))
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert snapshot.reserved == 0
    assert snapshot.spent <= cap
    assert snapshot.spent == await store.ledger_total(conn.id, WINDOW)
    assert any(results)
    assert not all(results)


async def test_a_cap_lowered_while_a_request_runs_still_bounds_its_charge(store: Store) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "live", 1000, NOW)
    hold = new_hold(conn.id, 800)
    assert await store.try_reserve(hold)
    await store.approve_connection("c1", "app_a", "u1", "live", 300, NOW)  # the member lowers the cap
    settled = await store.settle(Settlement(hold.id, 700), NOW)
    assert settled is not None
    assert (settled.charged, settled.spent, settled.cap) == (300, 300, 300)
    rows = await store.usage("app_a", "live", "u1", NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert rows[0].cost == 300
    # Once at the cap, nothing more is charged, whatever the request cost.
    conn = await store.approve_connection("c1", "app_a", "u1", "live", 300, NOW)
    assert not await store.try_reserve(new_hold(conn.id, 1))


async def test_renewing_a_live_hold_keeps_it_from_the_sweeper(store: Store) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1000, NOW)
    running = new_hold(conn.id, 100, created=NOW - timedelta(hours=1), ttl=60)
    assert await store.try_reserve(running)
    assert [r.id for r in await store.expired_holds(NOW)] == [running.id]
    assert await store.renew_holds([running.id, "req_gone"], NOW + timedelta(minutes=15)) == 1
    assert await store.expired_holds(NOW) == []

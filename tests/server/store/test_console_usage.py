"""The console's usage card (`app_month`): the top spenders of a window by counters, their ledger, the headline.

Run on SQLite and PostgreSQL alike; the last test checks on SQLite that no read of it scans a table (its planner
has no statistics here, so the plan of an empty file is the plan of a big one).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wattfare.metering import window_containing
from wattfare.server.store import Store, open_store
from wattfare.server.store.console_protocols import UserMonth
from wattfare.server.store.grant_records import NewGrant, grant_user_id
from wattfare.server.store.records import Endpoint, Mode, NewHold, Settlement
from wattfare.server.store.sql import console_usage
from wattfare.server.store.sql.statement import Statement

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = window_containing(NOW)
LAST_MONTH = window_containing(WINDOW.start - timedelta(days=1))
CAP = 10**12


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", CAP, NOW)
    await store.create_app("app_b", "B", CAP, NOW)
    try:
        yield store
    finally:
        await store.close()


async def connect(store: Store, user: str, mode: Mode = "test", app_id: str = "app_a") -> str:
    return (await store.approve_connection(f"c_{app_id}_{mode}_{user}", app_id, user, mode, CAP, NOW)).id


async def spend(
    store: Store,
    connection_id: str,
    cost: int,
    *,
    at: datetime = NOW,
    endpoint: Endpoint = "chat.completions",
    tokens: tuple[int, int] = (10, 5),
    grant_id: str | None = None,
) -> None:
    """One request of `connection_id` settled at `at`, in the window `at` falls in, charged `cost`."""
    window = window_containing(at)
    expires = at + timedelta(minutes=15)
    hold = NewHold(f"req_{uuid.uuid4().hex}", connection_id, window.key, cost, "m", at, expires, endpoint, grant_id)
    assert await store.try_reserve(hold)
    await store.settle(Settlement(hold.id, cost, prompt_tokens=tokens[0], completion_tokens=tokens[1]), at)


async def test_the_top_spenders_come_by_cost_ties_by_id_and_the_headline_counts_everyone(store: Store) -> None:
    costs = {"dan": 500, "bea": 300, "cat": 300, "abe": 300, "eve": 100, "fay": 50}
    for user, cost in costs.items():
        await spend(store, await connect(store, user), cost)
    await spend(store, await connect(store, "dan"), 200)  # a second request: dan's month is 700

    month = await store.app_month("app_a", "test", WINDOW.key, top=3, named=[])

    assert [(user.app_user_id, user.cost, user.requests) for user in month.users] == [
        ("dan", 700, 2),
        ("abe", 300, 1),
        ("bea", 300, 1),
    ]
    assert (month.spenders, month.spent) == (6, 700 + 300 * 3 + 100 + 50)
    everyone = await store.app_month("app_a", "test", WINDOW.key, top=50, named=[])
    assert [user.app_user_id for user in everyone.users] == ["dan", "abe", "bea", "cat", "eve", "fay"]
    assert (everyone.spenders, everyone.spent) == (month.spenders, month.spent)


async def test_each_user_row_sums_their_ledger_with_embeddings_apart(store: Store) -> None:
    reader = await connect(store, "reader")
    await spend(store, reader, 40, tokens=(100, 20))
    await spend(store, reader, 7, endpoint="embeddings", tokens=(300, 0))
    await spend(store, reader, 3, endpoint="embeddings", tokens=(50, 0))

    [row] = (await store.app_month("app_a", "test", WINDOW.key, top=5, named=[])).users

    assert row == UserMonth("reader", 3, 450, 20, 50, 2, 10)


async def test_named_users_are_listed_even_without_spend_or_a_connection(store: Store) -> None:
    for user, cost in (("big", 900), ("mid", 500), ("small", 10)):
        await spend(store, await connect(store, user), cost)
    await connect(store, "idle")  # a connection that never spent this month

    month = await store.app_month("app_a", "test", WINDOW.key, top=1, named=["idle", "small", "ghost"])

    assert [(user.app_user_id, user.cost, user.requests) for user in month.users] == [
        ("big", 900, 1),
        ("small", 10, 1),
        ("ghost", 0, 0),
        ("idle", 0, 0),
    ]
    assert (month.spenders, month.spent) == (3, 1410)


async def test_a_counter_with_nothing_in_the_ledger_is_not_a_user_of_the_month_but_a_free_request_is(
    store: Store,
) -> None:
    await spend(store, await connect(store, "payer"), 80)
    await spend(store, await connect(store, "free"), 0)
    waiting = NewHold("req_open", await connect(store, "waiting"), WINDOW.key, 500, "m", NOW, NOW + timedelta(hours=1))
    assert await store.try_reserve(waiting)  # a request still in flight: a counter, no ledger row yet

    month = await store.app_month("app_a", "test", WINDOW.key, top=10, named=[])

    assert [(user.app_user_id, user.cost, user.requests) for user in month.users] == [("payer", 80, 1), ("free", 0, 1)]
    assert (month.spenders, month.spent) == (1, 80)


async def test_modes_apps_and_months_are_kept_apart(store: Store) -> None:
    await spend(store, await connect(store, "u"), 100)
    await spend(store, await connect(store, "u", "live"), 2_000)
    await spend(store, await connect(store, "u", app_id="app_b"), 30_000)
    await spend(store, await connect(store, "old"), 500_000, at=LAST_MONTH.start + timedelta(days=3))
    # A request held on the last day of last month and settled after midnight counts in last month, as its cap did.
    straddler = await connect(store, "straddler")
    hold = NewHold("req_late", straddler, LAST_MONTH.key, 70, "m", WINDOW.start - timedelta(seconds=5), WINDOW.end)
    assert await store.try_reserve(hold)
    await store.settle(Settlement(hold.id, 70), WINDOW.start + timedelta(seconds=5))

    test = await store.app_month("app_a", "test", WINDOW.key, top=10, named=[])
    live = await store.app_month("app_a", "live", WINDOW.key, top=10, named=[])
    last = await store.app_month("app_a", "test", LAST_MONTH.key, top=10, named=[])

    assert [(user.app_user_id, user.cost) for user in test.users] == [("u", 100)]
    assert (test.spenders, test.spent) == (1, 100)
    assert [(user.app_user_id, user.cost) for user in live.users] == [("u", 2_000)]
    assert (live.spenders, live.spent) == (1, 2_000)
    assert [(user.app_user_id, user.cost) for user in last.users] == [("old", 500_000), ("straddler", 70)]
    assert (last.spenders, last.spent) == (2, 500_070)
    assert await store.app_month("app_a", "test", "2026-01", top=10, named=[]) == type(test)([], 0, 0)


async def test_a_grant_is_a_user_of_the_month_it_was_made_in(store: Store) -> None:
    grant = await store.create_grant(
        NewGrant("gr_1", "c_grant", "app_a", "test", None, "hash", 3, None, NOW, NOW + timedelta(days=1)), CAP
    )
    await spend(store, grant.connection_id, 250, grant_id=grant.id)
    await spend(store, await connect(store, "zed"), 250)

    month = await store.app_month("app_a", "test", WINDOW.key, top=10, named=[])

    assert [(user.app_user_id, user.cost) for user in month.users] == [(grant_user_id("gr_1"), 250), ("zed", 250)]
    assert (month.spenders, month.spent) == (2, 500)


READS: dict[str, Statement] = {
    "top and headline": console_usage._TOP_AND_HEADLINE,  # pyright: ignore[reportPrivateUsage]
    "named": console_usage._NAMED,  # pyright: ignore[reportPrivateUsage]
    "ledger": console_usage._LEDGER,  # pyright: ignore[reportPrivateUsage]
}


@pytest.mark.parametrize("read", list(READS))
async def test_no_read_of_the_card_scans_a_table(tmp_path: Path, read: str) -> None:
    database = tmp_path / "wattfare.db"
    store = open_store(f"sqlite:///{database}")
    await store.upgrade()
    await store.close()
    statement = READS[read].sqlite
    with sqlite3.connect(database) as db:
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", ["[]"] * statement.count("?"))]
    # The list of ids (json_each) and the window aggregates' rows (a subquery) are walked, never a table.
    scans = [step for step in plan if step.split(" ")[:2] in (["SCAN", "c"], ["SCAN", "k"], ["SCAN", "ledger"])]
    assert not scans, plan
    expected = {
        "top and headline": [
            "SEARCH c USING INDEX sqlite_autoindex_connections_2 (app_id=? AND mode=?)",
            "SEARCH k USING INDEX sqlite_autoindex_counters_1 (connection_id=? AND window_key=?)",
        ],
        "named": ["SEARCH c USING INDEX sqlite_autoindex_connections_2 (app_id=? AND mode=? AND app_user_id=?)"],
        "ledger": ["SEARCH ledger USING INDEX ledger_by_connection (connection_id=? AND window_key=?)"],
    }[read]
    for step in expected:
        assert any(found.startswith(step) for found in plan), plan

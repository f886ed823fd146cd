"""SQLite's group commit: the hot path's writes of one loop turn share a transaction, safely.

What must hold: every writer gets its own answer; a failing write undoes only itself; a failed COMMIT
fails every write of its group and leaves none of them behind; nobody resumes before the COMMIT; no
transaction is open while a group waits (readers see committed state only, other writes run at once);
a reserve cancelled while it waits leaves no hold.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wattfare.metering import MeteredUsage
from wattfare.server.billing.hold import HeldRequest
from wattfare.server.billing.meter import Meter
from wattfare.server.billing.pricebook import load_snapshot, price_models
from wattfare.server.store import StoreUnavailableError, open_store
from wattfare.server.store.records import Connection, KeyRecord, NewHold, Settlement
from wattfare.server.store.sqlite import SQLiteStore
from wattfare.server.store.sqlite.group_commit import GroupCommit

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = "2026-11"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = open_store(f"sqlite:///{tmp_path / 'group.db'}")
    assert isinstance(store, SQLiteStore)
    await store.upgrade()
    await store.create_app("app_a", "A", 10**12, NOW)
    try:
        yield store
    finally:
        await store.close()


def raw(store: SQLiteStore) -> sqlite3.Connection:
    return store._db  # pyright: ignore[reportPrivateUsage]  # the test watches the connection's statements


def transactions(store: SQLiteStore) -> GroupCommit:
    return store._transactions  # pyright: ignore[reportPrivateUsage]  # the test watches the queue


def hold(connection_id: str, amount: int, hold_id: str | None = None) -> NewHold:
    expires = NOW + timedelta(minutes=15)
    return NewHold(hold_id or f"req_{uuid.uuid4().hex}", connection_id, WINDOW, amount, "m", NOW, expires)


async def connection(store: SQLiteStore, user: str, cap: int = 1_000_000) -> Connection:
    return await store.approve_connection(f"conn_{user}", "app_a", user, "test", cap, NOW)


async def test_writes_of_one_turn_share_one_commit_and_each_gets_its_own_answer(store: SQLiteStore) -> None:
    conn = await connection(store, "u1", cap=1000)
    statements: list[str] = []
    raw(store).set_trace_callback(statements.append)
    # 12 reserves of 100 against a cap of 1,000, all issued in the same loop turn: exactly 10 fit.
    holds = [hold(conn.id, 100) for _ in range(12)]
    answers = await asyncio.gather(*(store.try_reserve(hold) for hold in holds))
    raw(store).set_trace_callback(None)

    assert answers == [True] * 10 + [False] * 2
    assert statements.count("COMMIT") == 1
    assert statements.count("BEGIN IMMEDIATE") == 1
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert (snapshot.spent, snapshot.reserved) == (0, 1000)

    settled = await asyncio.gather(*(store.settle(Settlement(hold.id, 40), NOW) for hold in holds[:10]))
    assert [s.charged if s else None for s in settled] == [40] * 10
    assert await store.ledger_total(conn.id, WINDOW) == 400


async def test_a_failing_write_undoes_only_itself(store: SQLiteStore) -> None:
    conn = await connection(store, "u1")
    first = hold(conn.id, 100)
    assert await store.try_reserve(first)
    neighbour = hold(conn.id, 200)
    duplicate = hold(conn.id, 300, hold_id=first.id)  # its INSERT fails after its UPDATE ran

    results = await asyncio.gather(store.try_reserve(neighbour), store.try_reserve(duplicate), return_exceptions=True)

    assert results[0] is True
    assert isinstance(results[1], sqlite3.IntegrityError)
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert snapshot.reserved == 300  # first + neighbour; the duplicate's counter update was rolled back


async def test_a_failed_commit_fails_every_write_of_the_group_and_keeps_none(store: SQLiteStore) -> None:
    conn = await connection(store, "u1")
    writes: list[Awaitable[object]] = [asyncio.ensure_future(store.try_reserve(hold(conn.id, 100))) for _ in range(3)]

    def sabotage(db: sqlite3.Connection) -> None:
        # A deferred foreign key fails only at COMMIT: the whole group must go with it.
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute("INSERT INTO counters (connection_id, window_key) VALUES ('no-such-connection', ?)", (WINDOW,))

    writes.append(asyncio.ensure_future(transactions(store).grouped(sabotage)))
    results = await asyncio.gather(*writes, return_exceptions=True)

    assert all(isinstance(result, StoreUnavailableError) for result in results), results
    assert not raw(store).in_transaction
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert snapshot.reserved == 0
    assert raw(store).execute("SELECT count(*) FROM holds").fetchone() == (0,)
    assert await store.try_reserve(hold(conn.id, 100))  # the next group works


async def test_no_writer_resumes_before_the_commit(store: SQLiteStore) -> None:
    conn = await connection(store, "u1")
    events: list[str] = []
    raw(store).set_trace_callback(events.append)

    async def reserve_and_note(index: int) -> None:
        assert await store.try_reserve(hold(conn.id, 10))
        events.append(f"resumed {index}")

    await asyncio.gather(*(reserve_and_note(index) for index in range(5)))
    raw(store).set_trace_callback(None)

    commit = events.index("COMMIT")
    assert all(events.index(f"resumed {index}") > commit for index in range(5))


async def test_a_waiting_group_is_invisible_and_holds_no_lock_until_its_flush(store: SQLiteStore) -> None:
    conn = await connection(store, "u1")
    grouped = asyncio.ensure_future(store.try_reserve(hold(conn.id, 100)))
    while not transactions(store).pending:
        await asyncio.sleep(0)

    # No transaction is open while the group waits: readers see only committed state, and a write off the
    # hot path runs alone at once.
    assert not raw(store).in_transaction
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert snapshot.reserved == 0
    await store.create_app("app_b", "B", 1, NOW)

    assert await grouped
    assert await store.get_app("app_b") is not None
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert snapshot.reserved == 100


async def test_a_reserve_cancelled_while_its_group_commits_leaves_no_hold(store: SQLiteStore) -> None:
    meter = Meter(store, lambda: NOW, hold_ttl=timedelta(minutes=15))
    key = KeyRecord(key_id="key_a", app_id="app_a", app_name="A", mode="test", default_test_cap=10**12)
    model = price_models(load_snapshot())["openai/gpt-4o-mini"]
    warm = await meter.reserve(key, "u1", model, prompt_token_bound=10, requested_max_tokens=5)
    assert isinstance(warm, HeldRequest)  # the connection exists now, so the next reserve goes straight to its write
    await warm.release()

    reserving = asyncio.ensure_future(
        meter.reserve(key, "u1", model, prompt_token_bound=10, requested_max_tokens=5, request_id="req_cancelled")
    )
    while not transactions(store).pending:
        await asyncio.sleep(0)
    reserving.cancel()  # the reserve is queued: it will commit, but its caller is gone
    with pytest.raises(asyncio.CancelledError):
        await reserving

    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert snapshot.reserved == 0
    assert raw(store).execute("SELECT count(*) FROM holds").fetchone() == (0,)
    released = raw(store).execute("SELECT kind, amount FROM ledger WHERE request_id = 'req_cancelled'").fetchall()
    assert released == [("released", 0)]


async def test_a_known_users_request_runs_the_fewest_statements(store: SQLiteStore) -> None:
    """The hot path's SQL, statement by statement: a regression here costs every request."""
    meter = Meter(store, lambda: NOW, hold_ttl=timedelta(minutes=15))
    key = KeyRecord(key_id="key_a", app_id="app_a", app_name="A", mode="test", default_test_cap=10**12)
    model = price_models(load_snapshot())["openai/gpt-4o-mini"]
    first = await meter.reserve(key, "u1", model, prompt_token_bound=10, requested_max_tokens=5)
    assert isinstance(first, HeldRequest)
    await first.release()  # the user, their connection and this window's counters exist from here on

    statements: list[str] = []
    raw(store).set_trace_callback(lambda sql: statements.append(" ".join(sql.split()[:3])))
    hold = await meter.reserve(key, "u1", model, prompt_token_bound=10, requested_max_tokens=5)
    assert isinstance(hold, HeldRequest)
    await hold.settle(MeteredUsage(prompt_tokens=8, completion_tokens=5))
    raw(store).set_trace_callback(None)

    assert statements == [
        "SELECT c.id, c.app_id,",  # the budget: connection and counters in one read
        "BEGIN IMMEDIATE",
        "SAVEPOINT grouped_write",
        "UPDATE counters SET",  # the cap guard
        "INSERT INTO holds",
        "RELEASE grouped_write",
        "COMMIT",
        "BEGIN IMMEDIATE",
        "SAVEPOINT grouped_write",
        "DELETE FROM holds",
        "SELECT c.id, c.app_id,",
        "UPDATE counters SET",
        "INSERT INTO ledger",  # no credit-hold lookup: the hold took none
        "RELEASE grouped_write",
        "COMMIT",
    ]

"""PostgreSQL: a window's first reserve is one statement, and its upsert guard keeps the cap under a race.

The one-statement reserve (`cap_guard.HOLD_AND_RECORD`) once updated an existing counters row only, so a window's
first request took the transaction path (six more round trips). Its guard is now an upsert: the first request
makes the row holding its amount iff that fits the cap; every later one updates it under the same guard.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wattfare.server.store.postgres import PostgresStore
from wattfare.server.store.records import NewHold

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = "2026-11"


@pytest.fixture
def store(postgres_store: PostgresStore) -> PostgresStore:
    return postgres_store


def hold(connection_id: str, amount: int) -> NewHold:
    return NewHold(f"req_{uuid.uuid4().hex}", connection_id, WINDOW, amount, "m", NOW, NOW + timedelta(minutes=15))


class NoTransactions:
    """Fails the test if the reserve falls back to its transaction."""

    async def __call__(self, work: Any) -> Any:
        raise AssertionError("the reserve left its one statement for the transaction path")


async def test_a_windows_first_reserve_is_one_statement_that_makes_the_counters_row(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1_000, NOW)
    engine = type(store._engine)  # pyright: ignore[reportPrivateUsage]
    monkeypatch.setattr(engine, "grouped_write", NoTransactions())

    assert await store.try_reserve(hold(conn.id, 600))
    assert await store.try_reserve(hold(conn.id, 400))

    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert (snapshot.spent, snapshot.reserved, snapshot.remaining) == (0, 1_000, 0)
    assert len(await store.expired_holds(NOW + timedelta(hours=1))) == 2  # both holds recorded


async def test_a_first_reserve_that_does_not_fit_or_a_revoked_connection_holds_nothing(store: PostgresStore) -> None:
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1_000, NOW)
    assert not await store.try_reserve(hold(conn.id, 1_001))
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert (snapshot.reserved, snapshot.remaining) == (0, 1_000)
    assert await store.expired_holds(NOW + timedelta(hours=1)) == []

    await store.revoke_connection("app_a", "test", "u1", NOW)
    assert not await store.try_reserve(hold(conn.id, 1))


async def test_first_reserves_racing_for_one_window_never_hold_past_the_cap(store: PostgresStore) -> None:
    """Forty first requests at once on a fresh window with room for exactly twelve: twelve hold, no more."""
    conn = await store.approve_connection("c1", "app_a", "u1", "test", 1_200, NOW)

    held = await asyncio.gather(*(store.try_reserve(hold(conn.id, 100)) for _ in range(40)))

    assert sum(held) == 12
    snapshot = await store.budget("app_a", "test", "u1", WINDOW)
    assert snapshot is not None
    assert (snapshot.reserved, snapshot.remaining) == (1_200, 0)
    assert len(await store.expired_holds(NOW + timedelta(hours=1))) == 12

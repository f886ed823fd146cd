"""PostgreSQL's one-round-trip settle (`wattfare_settle_usual`, migration 14) settles exactly as every store does.

It books a settle itself only when the cap does not bind, no alert threshold is crossed and no grant or credits
are involved, and leaves the rest to the statement-per-step path, where `wattfare.metering` decides. So each case
below is settled twice, on twin connections in the same state: once as `PostgresStore.settle` does (the function,
or the fall-back when it refuses) and once down the statement-per-step path alone (`SqlStore.settle`); the
answers, the counters, the ledger rows and the events written must be the same, whichever path took it.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wattfare.metering import charge_for, thresholds_crossed
from wattfare.server.store.postgres import PostgresStore
from wattfare.server.store.records import NewHold, Settled, Settlement
from wattfare.server.store.sql.store import SqlStore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = "2026-11"
CASES = 300


@pytest.fixture
def store(postgres_store: PostgresStore) -> PostgresStore:
    return postgres_store


async def _connection_in_state(store: PostgresStore, cap: int, spent: int, alerted: int, held: int) -> NewHold:
    """A connection with `spent` settled, `alerted` announced, and one hold of `held` on it."""
    conn = await store.approve_connection(f"c_{uuid.uuid4().hex}", "app_a", f"u_{uuid.uuid4().hex}", "test", cap, NOW)
    async with store._tx() as tx:  # pyright: ignore[reportPrivateUsage]
        await tx.execute(
            "INSERT INTO counters (connection_id, window_key, spent, reserved, alerted) VALUES ($1, $2, $3, $4, $5)",
            conn.id,
            WINDOW,
            spent,
            held,
            alerted,
        )
        hold = NewHold(f"req_{uuid.uuid4().hex}", conn.id, WINDOW, held, "m", NOW, NOW + timedelta(minutes=15))
        await tx.execute(
            "INSERT INTO holds (id, connection_id, window_key, amount, model, created_at, expires_at, endpoint) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, 'chat.completions')",
            hold.id,
            conn.id,
            WINDOW,
            held,
            "m",
            NOW.isoformat(),
            hold.expires_at.isoformat(),
        )
    return hold


async def _books(store: PostgresStore, connection_id: str) -> dict[str, Any]:
    async with store._conn() as conn:  # pyright: ignore[reportPrivateUsage]
        counters = await conn.fetchrow(
            "SELECT spent, reserved, alerted FROM counters WHERE connection_id = $1 AND window_key = $2",
            connection_id,
            WINDOW,
        )
        ledger = await conn.fetch(
            "SELECT kind, model, amount, absorbed, prompt_tokens, completion_tokens, endpoint, window_key "
            "FROM ledger WHERE connection_id = $1",
            connection_id,
        )
        events = await conn.fetch(
            "SELECT type FROM webhook_events WHERE body LIKE '%' || "
            "(SELECT app_user_id FROM connections WHERE id = $1) || '%' ORDER BY type",
            connection_id,
        )
        holds = await conn.fetchval("SELECT COUNT(*) FROM holds WHERE connection_id = $1", connection_id)
    return {
        "counters": tuple(counters),
        "ledger": [tuple(row) for row in ledger],
        "events": [row[0] for row in events],
        "holds": holds,
    }


def _comparable(settled: Settled | None) -> tuple[object, ...] | None:
    if settled is None:
        return None
    return (settled.spent, settled.reserved, settled.cap, settled.charged, settled.mode, settled.absorbed)


def _case(rng: random.Random) -> tuple[int, int, int, int, int, str]:
    """(cap, spent, alerted, held, cost, kind), edges drawn often: what the cap's arithmetic turns on."""
    cap = rng.choice([0, 1, 100, 1_000, rng.randrange(1, 10**12)])
    spent = rng.choice([0, cap, max(0, cap - 1), cap // 2, rng.randrange(0, cap + 2)])
    alerted = rng.choice([0, 0, 50, 80, 100])
    held = rng.choice([0, 1, rng.randrange(0, cap + 2), rng.randrange(0, 10**10)])
    cost = rng.choice([0, -5, held, held + 1, max(0, held - 1), rng.randrange(0, 2 * held + 2), cap - spent])
    kind = rng.choice(["charge", "charge", "estimated", "released", "expired"])
    return cap, spent, alerted, held, cost, kind


async def test_the_one_call_settle_books_what_the_statement_per_step_path_books(store: PostgresStore) -> None:
    rng = random.Random(20261206)
    taken_whole = 0
    for _ in range(CASES):
        cap, spent, alerted, held, cost, kind = _case(rng)
        fast = await _connection_in_state(store, cap, spent, alerted, held)
        slow = await _connection_in_state(store, cap, spent, alerted, held)
        settlement = {"charged": cost, "absorbed": 3, "prompt_tokens": 7, "completion_tokens": 9, "kind": kind}

        by_store = await store.settle(Settlement(fast.id, holds_credits=False, **settlement), NOW)  # type: ignore[arg-type]
        by_steps = await SqlStore.settle(store, Settlement(slow.id, holds_credits=False, **settlement), NOW)  # type: ignore[arg-type]

        case = (cap, spent, alerted, held, cost, kind)
        assert _comparable(by_store) == _comparable(by_steps), case
        assert await _books(store, fast.connection_id) == await _books(store, slow.connection_id), case
        # And both are the rule itself.
        charge = charge_for(cost, held=held, cap=cap, spent=spent)
        assert by_store is not None
        assert (by_store.charged, by_store.absorbed) == (charge.charged, 3 + charge.absorbed), case
        crossed = thresholds_crossed(spent + charge.charged, cap, alerted)
        usual = spent + min(max(cost, 0), held) <= cap and not crossed
        taken_whole += usual
    # The draw reaches both paths often (a guard on the test itself).
    assert CASES // 5 < taken_whole < CASES - CASES // 5


async def test_a_usual_settle_is_one_call_and_the_rest_go_step_by_step(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    step_by_step = SqlStore.settle

    async def counted(self: SqlStore, settlement: Settlement, now: datetime) -> Settled | None:
        steps.append(settlement.hold_id)
        return await step_by_step(self, settlement, now)

    monkeypatch.setattr(SqlStore, "settle", counted)
    usual = await _connection_in_state(store, cap=1_000_000, spent=0, alerted=0, held=1_000)
    crossing = await _connection_in_state(store, cap=1_000_000, spent=499_999, alerted=0, held=1_000)
    binding = await _connection_in_state(store, cap=1_000_000, spent=999_900, alerted=100, held=1_000)
    credited = await _connection_in_state(store, cap=1_000_000, spent=0, alerted=0, held=1_000)

    assert await store.settle(Settlement(usual.id, 600, holds_credits=False), NOW) is not None
    assert await store.settle(Settlement(crossing.id, 600, holds_credits=False), NOW) is not None
    assert await store.settle(Settlement(binding.id, 600, holds_credits=False), NOW) is not None
    assert await store.settle(Settlement(credited.id, 600), NOW) is not None
    assert steps == [crossing.id, binding.id, credited.id]
    # The crossing one announced its threshold (the function left it to the path that writes events).
    assert (await _books(store, crossing.connection_id))["events"] == ["budget.threshold", "connection.approved"]
    # A hold settled already is gone: no second charge, whichever path looks.
    assert await store.settle(Settlement(usual.id, 600, holds_credits=False), NOW) is None
    assert (await _books(store, usual.connection_id))["counters"] == (600, 0, 0)

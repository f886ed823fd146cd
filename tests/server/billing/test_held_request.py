"""The owner of a hold, in-process on both stores: every way out of a request ends its hold exactly once.

Each way a request can end after its reserve: an explicit settlement, an exception before or after the
upstream answered, a cancellation inside the settle's write, a store that cannot take the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.ledger import Ledger
from wattfare.metering import MeteredUsage
from wattfare.server.billing.hold import HeldRequest
from wattfare.server.billing.meter import Meter
from wattfare.server.billing.pricebook import load_snapshot, price_models
from wattfare.server.store import Store, StoreUnavailableError, open_store
from wattfare.server.store.records import KeyRecord, Settled, Settlement

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = KeyRecord(key_id="key_a", app_id="app_a", app_name="A", mode="test", default_test_cap=10**12)


class GatedStore:
    """A real store whose settle can be held at its door, or refused as if the database were gone."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.door = asyncio.Event()
        self.door.set()
        self.down = False
        self.writing = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        self.writing.set()
        await self.door.wait()
        if self.down:
            raise StoreUnavailableError("the test took the database away")
        return await self._store.settle(settlement, now)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10**12, NOW)
    try:
        yield store
    finally:
        await store.close()


async def admitted(meter: Meter) -> HeldRequest:
    model = price_models(load_snapshot())["openai/gpt-4o-mini"]
    held = await meter.reserve(KEY, "u1", model, prompt_token_bound=50, requested_max_tokens=20)
    assert isinstance(held, HeldRequest)
    return held


@pytest.fixture
def ledger(database_url: str) -> Ledger:
    return Ledger(database_url)


async def ledger_rows(ledger: Ledger, request_id: str) -> list[tuple[str, int]]:
    rows = await asyncio.to_thread(ledger.rows)
    return [(row.kind, row.amount) for row in rows.values() if row.request_id == request_id]


async def open_holds(ledger: Ledger) -> int:
    return await asyncio.to_thread(ledger.open_holds)


async def test_a_cancellation_inside_the_settles_write_waits_for_it_and_settles_once(
    store: Store, ledger: Ledger
) -> None:
    gate = GatedStore(store)
    meter = Meter(gate, lambda: NOW, hold_ttl=timedelta(minutes=15))  # type: ignore[arg-type]
    held = await admitted(meter)
    gate.door.clear()

    async def request() -> None:
        async with held:
            held.answered = True
            await held.settle(MeteredUsage(prompt_tokens=10, completion_tokens=5))

    running = asyncio.ensure_future(request())
    await gate.writing.wait()
    running.cancel()  # the client hangs up while the ledger is being written
    await asyncio.sleep(0.01)
    assert not running.done()  # the request waits for its write rather than leaving it half-done
    gate.door.set()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert held.ended
    assert [kind for kind, _ in await ledger_rows(ledger, held.hold.id)] == ["charge"]
    assert await open_holds(ledger) == 0


async def test_an_exit_before_the_upstream_answered_releases_the_hold(store: Store, ledger: Ledger) -> None:
    meter = Meter(store, lambda: NOW, hold_ttl=timedelta(minutes=15))
    held = await admitted(meter)

    async def request() -> None:
        async with held:
            raise RuntimeError("the upstream call failed")

    with pytest.raises(RuntimeError):
        await request()

    assert await ledger_rows(ledger, held.hold.id) == [("released", 0)]


async def test_an_exit_after_the_upstream_answered_charges_the_bound_of_what_came_back(
    store: Store, ledger: Ledger
) -> None:
    meter = Meter(store, lambda: NOW, hold_ttl=timedelta(minutes=15))
    held = await admitted(meter)

    async def request() -> None:
        async with held:
            held.answered = True
            held.output_bytes = 12
            raise RuntimeError("the client left")

    with pytest.raises(RuntimeError):
        await request()

    ((kind, amount),) = await ledger_rows(ledger, held.hold.id)
    assert kind == "estimated"
    assert 0 < amount < held.hold.amount


async def test_a_settlement_the_store_could_not_take_is_written_by_the_sweep_once_it_is_back(
    store: Store, ledger: Ledger
) -> None:
    gate = GatedStore(store)
    meter = Meter(gate, lambda: NOW, hold_ttl=timedelta(minutes=15))  # type: ignore[arg-type]
    held = await admitted(meter)
    gate.down = True

    with pytest.raises(StoreUnavailableError):
        await held.settle(MeteredUsage(prompt_tokens=10, completion_tokens=5))
    async with held:
        pass  # the exit finds the settlement deferred: nothing is written twice, nothing raised

    assert not held.ended
    assert await ledger_rows(ledger, held.hold.id) == []
    assert await open_holds(ledger) == 1  # still held (and renewed by the sweep), never expired
    gate.down = False
    await meter.sweep()

    assert [kind for kind, _ in await ledger_rows(ledger, held.hold.id)] == ["charge"]
    assert await open_holds(ledger) == 0


async def test_usage_that_claims_nothing_for_text_that_came_back_is_charged_the_bound(
    store: Store, ledger: Ledger
) -> None:
    meter = Meter(store, lambda: NOW, hold_ttl=timedelta(minutes=15))
    held = await admitted(meter)
    held.answered = True
    held.output_bytes = 10

    settled = await held.settle(MeteredUsage(prompt_tokens=10, completion_tokens=0))

    assert settled is not None
    ((kind, amount),) = await ledger_rows(ledger, held.hold.id)
    assert (kind, amount) == ("estimated", settled.charged)
    # The prompt bound and ten bytes of answer, at the model's prices: far more than the zero tokens claimed.
    assert amount == held.hold.output_bound(10).charged == 50 * 150 + 10 * 600

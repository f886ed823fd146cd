"""The ceiling's statements (migration 8), on SQLite and PostgreSQL, and the pure formula the limit comes from."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from wattfare.metering import window_containing
from wattfare.metering.ceiling import Ceiling, ceiling_for, reconciliation_tolerance
from wattfare.server.store import Store, open_store
from wattfare.server.store.account_records import CeilingKey, ProviderKey
from wattfare.server.store.records import NewHold, Settlement

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = window_containing(NOW)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    for member in ("mem_a", "mem_b"):
        assert await store.create_member(member, f"{member}@example.com", "$argon2id$x", NOW) is not None
    try:
        yield store
    finally:
        await store.close()


async def _budget(store: Store, member: str = "mem_a") -> tuple[int, int, int, bool]:
    found = await store.ceiling_budget(member, WINDOW.key, WINDOW.start, WINDOW.end)
    return found.charged_this_month, found.credits_left, found.caps_headroom, found.linked_own_key


async def test_the_budget_counts_this_months_charges_credits_left_and_active_live_caps(store: Store) -> None:
    assert await _budget(store) == (0, 0, 0, False)
    await store.grant_credits("mem_a", 1_000, "test", NOW)
    one = await store.approve_member_connection("c1", "app_a", "u1", "live", 600, "mem_a", NOW)
    await store.approve_member_connection("c2", "app_a", "u2", "live", 300, "mem_a", NOW)
    await store.approve_member_connection("c3", "app_a", "u3", "test", 5_000, "mem_a", NOW)  # test mode: not counted
    hold = NewHold(f"req_{uuid.uuid4().hex}", one.id, WINDOW.key, 200, "m", NOW, NOW + timedelta(minutes=15))
    assert await store.try_reserve_credited(hold, "mem_a")
    await store.settle(Settlement(hold.id, 150), NOW)
    # Charged 150; credits 1,000 - 150; caps (600 - 150) + 300.
    assert await _budget(store) == (150, 850, 750, False)
    await store.revoke_member_connection("mem_a", "c2", NOW)
    assert await _budget(store) == (150, 850, 450, False)
    # Next month: the charge belongs to the last one, the caps start afresh.
    later = window_containing(WINDOW.end)
    found = await store.ceiling_budget("mem_a", later.key, later.start, later.end)
    assert (found.charged_this_month, found.caps_headroom) == (0, 600)
    await store.put_provider_key(ProviderKey("mem_a", "openrouter", "v1:x", "sk-or…", None, NOW, 3_000))
    assert (await _budget(store))[3] is True
    assert (await store.provider_key("mem_a")).monthly_limit == 3_000  # type: ignore[union-attr]
    assert await _budget(store, "mem_b") == (0, 0, 0, False)


async def test_a_ceiling_key_is_kept_once_synced_and_its_hits_counted_per_month(store: Store) -> None:
    key = CeilingKey("mem_a", "abc123", "v1:sealed", 500, False, NOW)
    assert await store.put_ceiling_key(key)
    assert not await store.put_ceiling_key(CeilingKey("mem_a", "other", "v1:x", 1, False, NOW))  # the first stays
    assert await store.ceiling_key("mem_a") == key
    later = NOW + timedelta(minutes=1)
    await store.ceiling_synced("mem_a", 0, True, later)
    assert await store.ceiling_keys() == [CeilingKey("mem_a", "abc123", "v1:sealed", 0, True, later)]
    await store.grant_credits("mem_b", 5, "test", NOW)
    assert await store.ceiling_members() == ["mem_a", "mem_b"]

    assert await store.ceiling_hit("mem_a") is None
    await store.record_ceiling_hit("mem_a", "2026-11", NOW)
    await store.record_ceiling_hit("mem_a", "2026-11", NOW + timedelta(seconds=1))
    hit = await store.ceiling_hit("mem_a")
    assert hit is not None
    assert (hit.window_key, hit.hits, hit.last_at) == ("2026-11", 2, NOW + timedelta(seconds=1))
    await store.record_ceiling_hit("mem_a", "2026-12", NOW + timedelta(days=10))
    assert (await store.ceiling_hit("mem_a")).hits == 1  # type: ignore[union-attr]


def test_the_limit_is_this_months_charge_plus_the_lower_of_credits_and_caps() -> None:
    assert ceiling_for(charged_this_month=150, credits_left=850, caps_headroom=450) == Ceiling(600, False)
    assert ceiling_for(charged_this_month=150, credits_left=100, caps_headroom=450) == Ceiling(250, False)
    # Nothing left on either side: the key is disabled at what was already charged.
    assert ceiling_for(charged_this_month=150, credits_left=0, caps_headroom=450) == Ceiling(150, True)
    assert ceiling_for(charged_this_month=0, credits_left=10, caps_headroom=0) == Ceiling(0, True)


def test_the_reconciliation_tolerance_is_a_tenth_of_a_cent_or_one_percent_plus_what_is_in_flight() -> None:
    assert reconciliation_tolerance(0) == 1_000_000
    assert reconciliation_tolerance(500_000_000) == 5_000_000
    assert reconciliation_tolerance(0, in_flight=250) == 1_000_250

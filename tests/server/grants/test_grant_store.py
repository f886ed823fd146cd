"""A grant's connection belongs to its grant: the member's connection list, cap and revoke routes never reach it,
and the provider ceiling counts what a live grant may still spend. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from wattfare.metering import MAX_CAP, usd_to_nanos
from wattfare.server.billing.grants import MintedGrant, mint_grant
from wattfare.server.store import Store, open_store

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = "2026-11"
MONTH = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    assert await store.create_member("mem_1", "mem_1@example.com", "not-a-real-hash", NOW) is not None
    try:
        yield store
    finally:
        await store.close()


async def live_grant(store: Store, max_usd: str | None, *, lifetime: timedelta = timedelta(hours=1)) -> MintedGrant:
    return await mint_grant(
        store,
        app_id="app_a",
        mode="live",
        member_id="mem_1",
        requests=3,
        max_amount=None if max_usd is None else usd_to_nanos(max_usd),
        lifetime=lifetime,
        now=NOW,
    )


async def test_a_grants_connection_is_not_a_connection_the_member_can_cap_revoke_or_remove(store: Store) -> None:
    minted = await live_grant(store, "1")
    connection_id = minted.grant.connection_id

    assert await store.member_connections("mem_1", WINDOW) == []
    assert await store.set_member_cap("mem_1", connection_id, usd_to_nanos("500"), NOW) is None
    assert await store.revoke_member_connection("mem_1", connection_id, NOW) is None
    assert not await store.remove_member_connection("mem_1", connection_id, NOW)
    grant = await store.get_grant(minted.grant.id)
    assert grant is not None
    assert grant.state(NOW) == "active"


async def test_the_ceiling_counts_what_live_grants_may_still_spend_and_nothing_of_ended_ones(store: Store) -> None:
    await store.approve_member_connection("conn_1", "app_a", "alice", "live", usd_to_nanos("5"), "mem_1", NOW)
    before = await store.ceiling_budget("mem_1", WINDOW, *MONTH)
    assert before.caps_headroom == usd_to_nanos("5")

    capped = await live_grant(store, "2")
    assert (await store.ceiling_budget("mem_1", WINDOW, *MONTH)).caps_headroom == usd_to_nanos("7")

    uncapped = await live_grant(store, None)
    assert (await store.ceiling_budget("mem_1", WINDOW, *MONTH)).caps_headroom == usd_to_nanos("7") + MAX_CAP

    assert await store.revoke_member_grant("mem_1", uncapped.grant.id, NOW) is not None
    assert await store.revoke_member_grant("mem_1", capped.grant.id, NOW) is not None
    assert await store.revoke_member_grant("mem_1", capped.grant.id, NOW) is None  # only once
    assert (await store.ceiling_budget("mem_1", WINDOW, *MONTH)).caps_headroom == usd_to_nanos("5")


async def test_a_grant_expired_before_the_month_began_is_not_headroom(store: Store) -> None:
    await live_grant(store, "2", lifetime=timedelta(minutes=1))
    next_month = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))

    assert (await store.ceiling_budget("mem_1", "2026-12", *next_month)).caps_headroom == 0

"""The outbox, on SQLite and PostgreSQL: each change writes its event in its own transaction, and only then.

A change that changes nothing announces nothing; a transaction that fails after writing its event takes the event
with it; and each event gets one pending delivery per endpoint of its app and mode that is neither disabled nor
deleted, and none when the app has no endpoint (the event is still kept).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.server.webhooks.outbox_rows import EventRow, deliveries, events
from wattfare.metering import window_containing
from wattfare.server.billing.key_vault import KeyVault, new_vault_key
from wattfare.server.store import Store, open_store
from wattfare.server.store.records import NewHold, Settlement
from wattfare.server.webhooks.endpoints import add_endpoint

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
WINDOW = window_containing(NOW).key


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    for app in ("app_a", "app_b"):
        await store.create_app(app, app.upper(), 10_000, NOW)
    assert await store.create_member("mem_a", "mem_a@example.com", "$argon2id$x", NOW) is not None
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def vault() -> KeyVault:
    vault = KeyVault()
    vault.load(new_vault_key())
    return vault


def of(rows: list[EventRow], connection_id: str) -> list[str]:
    """The types of the events about one connection, sorted (events of one instant have no order)."""
    return sorted(row.type for row in rows if row.connection_id == connection_id)


async def test_each_change_writes_one_event_and_a_repeat_that_changes_nothing_writes_none(
    store: Store, database_url: str
) -> None:
    made = await store.ensure_connection("conn_1", "app_a", "u1", "test", 1_000, NOW)
    again = await store.ensure_connection("conn_other", "app_a", "u1", "test", 1_000, NOW)
    assert again.id == made.id == "conn_1"
    assert of(await events(database_url), "conn_1") == ["connection.approved"]

    assert await store.revoke_connection("app_a", "test", "u1", NOW) is not None
    still_revoked = await store.revoke_connection("app_a", "test", "u1", NOW + timedelta(seconds=1))
    assert still_revoked is not None
    assert still_revoked.state == "revoked"
    assert await store.revoke_connection("app_a", "test", "nobody", NOW) is None
    assert of(await events(database_url), "conn_1") == ["connection.approved", "connection.revoked"]

    await store.approve_connection("conn_new", "app_a", "u1", "test", 2_000, NOW)
    rows = await events(database_url)
    assert of(rows, "conn_1") == ["connection.approved", "connection.approved", "connection.revoked"]
    assert len(rows) == 3  # nothing about anyone else
    revoked = next(row for row in rows if row.type == "connection.revoked").body
    assert revoked["data"]["connection"] == {
        "id": "conn_1",
        "appUserId": "u1",
        "state": "revoked",
        "limits": {"monthlyUsd": 0.000001},
    }
    assert (revoked["appId"], revoked["mode"], revoked["type"]) == ("app_a", "test", "connection.revoked")


async def test_setting_a_members_cap_to_the_cap_it_has_announces_nothing(store: Store, database_url: str) -> None:
    await store.approve_member_connection("conn_m", "app_a", "u-member", "live", 5_000, "mem_a", NOW)
    assert await store.set_member_cap("mem_a", "conn_m", 5_000, NOW) is not None
    assert of(await events(database_url), "conn_m") == ["connection.approved"]

    assert await store.set_member_cap("mem_a", "conn_m", 7_000, NOW) is not None
    assert await store.set_member_cap("mem_a", "conn_m", 7_000, NOW) is not None
    assert await store.set_member_cap("mem_b", "conn_m", 9_000, NOW) is None  # not theirs: no change, no event
    rows = await events(database_url)
    assert of(rows, "conn_m") == ["connection.approved", "connection.cap_changed"]
    [changed] = [row.body["data"] for row in rows if row.type == "connection.cap_changed"]
    assert changed["previousLimits"] == {"monthlyUsd": 0.000005}
    assert changed["connection"]["limits"] == {"monthlyUsd": 0.000007}

    assert await store.revoke_member_connection("mem_a", "conn_m", NOW) is not None
    assert await store.revoke_member_connection("mem_a", "conn_m", NOW) is not None
    assert of(await events(database_url), "conn_m") == [
        "connection.approved",
        "connection.cap_changed",
        "connection.revoked",
    ]


async def test_a_settle_that_fails_after_announcing_a_threshold_takes_the_event_with_it(
    store: Store, database_url: str
) -> None:
    async def settle(app_user_id: str, hold_id: str, amount: int) -> None:
        connection = await store.get_connection("app_a", "test", app_user_id)
        assert connection is not None
        hold = NewHold(hold_id, connection.id, WINDOW, amount, "m", NOW, NOW + timedelta(minutes=15))
        assert await store.try_reserve(hold)
        await store.settle(Settlement(hold_id, amount), NOW)

    for user in ("u-failed", "u-committed"):
        await store.approve_connection(f"conn_{user}", "app_a", user, "test", 1_000, NOW)
        await settle(user, f"req_{user}", 100)
    # The same request id again: the settle announces 50% and 80%, then its ledger row collides with the first one
    # (`request_id` is unique), so the whole transaction fails after `record_event` ran inside it.
    with pytest.raises(Exception, match=r"(?i)unique"):
        await settle("u-failed", "req_u-failed", 800)
    assert of(await events(database_url), "conn_u-failed") == ["connection.approved"]
    budget = await store.budget("app_a", "test", "u-failed", WINDOW)
    assert budget is not None
    assert (budget.spent, budget.reserved) == (100, 800)  # nothing settled: the hold is still there

    # The same crossing by a settle that commits is announced, once per threshold.
    await settle("u-committed", "req_u-committed-2", 800)
    rows = await events(database_url)
    assert of(rows, "conn_u-committed") == ["budget.threshold", "budget.threshold", "connection.approved"]
    thresholds = [row.body["data"] for row in rows if row.type == "budget.threshold"]
    assert sorted(data["percent"] for data in thresholds) == [50, 80]
    assert {data["spentUsd"] for data in thresholds} == {0.0000009}


async def test_an_app_without_endpoints_keeps_its_events_but_makes_no_deliveries(
    store: Store, vault: KeyVault, database_url: str
) -> None:
    # app_b has an endpoint: app_a's events must not be delivered there.
    await add_endpoint(store, vault, "app_b", "test", "http://127.0.0.1:9/b", "", NOW)
    await store.ensure_connection("conn_1", "app_a", "u1", "test", 1_000, NOW)
    await store.revoke_connection("app_a", "test", "u1", NOW)
    assert sorted(row.type for row in await events(database_url)) == ["connection.approved", "connection.revoked"]
    assert await deliveries(database_url) == set()


async def test_deliveries_go_to_the_endpoints_of_the_events_app_and_mode_that_are_neither_disabled_nor_deleted(
    store: Store, vault: KeyVault, database_url: str
) -> None:
    async def endpoint(app: str, mode: str, url: str) -> str:
        return (await add_endpoint(store, vault, app, "live" if mode == "live" else "test", url, "", NOW)).endpoint.id

    enabled = await endpoint("app_a", "test", "http://127.0.0.1:9/enabled")
    failing = await endpoint("app_a", "test", "http://127.0.0.1:9/failing")
    disabled = await endpoint("app_a", "test", "http://127.0.0.1:9/disabled")
    deleted = await endpoint("app_a", "test", "http://127.0.0.1:9/deleted")
    live = await endpoint("app_a", "live", "https://example.com/live")
    other_app = await endpoint("app_b", "test", "http://127.0.0.1:9/b")
    assert await store.update_webhook_endpoint(
        "app_a", disabled, url="http://127.0.0.1:9/disabled", description="", enabled=False
    )
    assert await store.delete_webhook_endpoint("app_a", deleted, NOW)
    # An endpoint whose deliveries failed for good is `failing`: it still gets new events (a success heals it).
    await store.ensure_connection("conn_0", "app_a", "u0", "test", 1_000, NOW)
    [first] = await events(database_url)
    await store.delivery_failed(first.id, failing, 500, "answered 500", NOW, None)
    failed = await store.webhook_endpoint("app_a", failing)
    assert failed is not None
    assert failed.state == "failing"

    await store.ensure_connection("conn_t", "app_a", "u1", "test", 1_000, NOW)
    await store.approve_member_connection("conn_l", "app_a", "u1", "live", 1_000, "mem_a", NOW)
    rows = {row.connection_id: row.id for row in await events(database_url)}
    made = await deliveries(database_url)

    assert {endpoint for event, endpoint in made if event == rows["conn_t"]} == {enabled, failing}
    assert {endpoint for event, endpoint in made if event == rows["conn_l"]} == {live}
    assert not {endpoint for _, endpoint in made} & {disabled, deleted, other_app}

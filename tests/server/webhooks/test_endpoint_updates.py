"""Changing an endpoint: only what is named changes, in one statement, so two changes at once both land.

The API's PATCH and the console's enable/disable used to read the endpoint and write every field back: a URL
changed through the API while the console disabled the endpoint came back as the old URL. Run on both engines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from wattfare.server.billing.key_vault import KeyVault, new_vault_key
from wattfare.server.store import Store, open_store
from wattfare.server.webhooks.endpoints import add_endpoint

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, NOW)
    try:
        yield store
    finally:
        await store.close()


async def new_endpoint(store: Store) -> str:
    vault = KeyVault()
    vault.load(new_vault_key())
    return (await add_endpoint(store, vault, "app_a", "test", "http://127.0.0.1:9/old", "old", NOW)).endpoint.id


async def test_changes_to_different_fields_at_once_both_land(store: Store) -> None:
    endpoint = await new_endpoint(store)

    await asyncio.gather(
        store.update_webhook_endpoint("app_a", endpoint, url="http://127.0.0.1:9/new"),
        store.update_webhook_endpoint("app_a", endpoint, enabled=False),
        store.update_webhook_endpoint("app_a", endpoint, description="new"),
    )

    found = await store.webhook_endpoint("app_a", endpoint)
    assert found is not None
    assert (found.url, found.description, found.state) == ("http://127.0.0.1:9/new", "new", "disabled")


async def test_a_change_keeps_disabled_disabled_and_turns_failing_into_enabled(store: Store) -> None:
    endpoint = await new_endpoint(store)
    await store.update_webhook_endpoint("app_a", endpoint, enabled=False)

    await store.update_webhook_endpoint("app_a", endpoint, description="still off")
    still_off = await store.webhook_endpoint("app_a", endpoint)
    assert still_off is not None
    assert (still_off.state, still_off.description, still_off.url) == (
        "disabled",
        "still off",
        "http://127.0.0.1:9/old",
    )

    await store.update_webhook_endpoint("app_a", endpoint, enabled=True)
    await store.ensure_connection("conn_1", "app_a", "u1", "test", 1_000, NOW)  # an event to fail
    [due] = await store.claim_deliveries(NOW, NOW, 10)
    await store.delivery_failed(due.event_id, endpoint, 500, "answered 500", NOW, None)
    failing = await store.webhook_endpoint("app_a", endpoint)
    assert failing is not None
    assert failing.state == "failing"

    await store.update_webhook_endpoint("app_a", endpoint, url="http://127.0.0.1:9/fixed")
    fixed = await store.webhook_endpoint("app_a", endpoint)
    assert fixed is not None
    assert (fixed.state, fixed.failing_since, fixed.description) == ("enabled", None, "still off")


async def test_a_deleted_endpoint_changes_no_more(store: Store) -> None:
    endpoint = await new_endpoint(store)
    assert await store.delete_webhook_endpoint("app_a", endpoint, NOW)

    assert await store.update_webhook_endpoint("app_a", endpoint, description="too late") is None

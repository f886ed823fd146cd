"""The delivery loop over a real store and a real receiver, on a clock the test moves: the whole retry schedule.

An endpoint that keeps answering 500 gets the first attempt and seven retries, each on the schedule and each under
the same `webhook-id`; then the delivery is `failed`, the endpoint `failing`, and nothing more is sent. Resent once
the endpoint answers again, it is delivered and the endpoint is healthy again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver
from wattfare.server.billing.key_vault import KeyVault, new_vault_key
from wattfare.server.mail.message import Email
from wattfare.server.store import Store, open_store
from wattfare.server.webhooks.deliverer import Deliverer
from wattfare.server.webhooks.endpoints import add_endpoint
from wattfare.server.webhooks.schedule import RETRY_DELAYS

pytestmark = pytest.mark.anyio


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Letters:
    """A mailer that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[Email] = []

    async def send(self, email: Email) -> None:
        self.sent.append(email)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url)
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


async def test_a_failing_endpoint_is_retried_on_the_schedule_then_marked_failing_and_healed_by_a_success(
    store: Store,
) -> None:
    clock = Clock()
    vault = KeyVault()
    vault.load(new_vault_key())
    receiver: WebhookReceiver
    with webhook_receiver() as receiver:
        receiver.answer_with(500)
        await store.create_app("app_a", "A", 10_000, clock())
        endpoint = (await add_endpoint(store, vault, "app_a", "test", receiver.url, "", clock())).endpoint
        await store.ensure_connection("conn_1", "app_a", "u1", "test", 1_000, clock())
        deliverer = Deliverer(store, vault, Letters(), clock, account_url="http://wattfare.test/account", timeout=5)

        for attempt, delay in enumerate([*RETRY_DELAYS, None], start=1):
            assert await deliverer.run_once() == 1
            assert len(receiver.arrivals()) == attempt
            [record] = await store.recent_deliveries("app_a", endpoint.id)
            assert (record.attempts, record.last_status, record.last_error) == (attempt, 500, "answered 500")
            if delay is None:
                break
            assert (record.state, record.next_attempt_at) == ("pending", clock() + delay)
            # Not due a moment before its time...
            clock.now += delay - timedelta(seconds=1)
            assert await deliverer.run_once() == 0
            clock.now += timedelta(seconds=1)

        [record] = await store.recent_deliveries("app_a", endpoint.id)
        assert record.state == "failed"
        failing = await store.webhook_endpoint("app_a", endpoint.id)
        assert failing is not None
        assert failing.state == "failing"
        clock.now += timedelta(days=2)
        assert await deliverer.run_once() == 0  # given up: nothing is sent any more

        receiver.answer_with(204)
        assert await store.resend_delivery("app_a", endpoint.id, record.event_id, clock())
        assert await deliverer.run_once() == 1
        [delivered] = await store.recent_deliveries("app_a", endpoint.id)
        assert (delivered.state, delivered.attempts, delivered.last_status) == ("delivered", 9, 204)
        healed = await store.webhook_endpoint("app_a", endpoint.id)
        assert healed is not None
        assert (healed.state, healed.failing_since) == ("enabled", None)

        arrivals = receiver.arrivals()
        assert len(arrivals) == 1 + len(RETRY_DELAYS) + 1
        assert {arrival.webhook_id for arrival in arrivals} == {record.event_id}
        assert len({arrival.body for arrival in arrivals}) == 1  # every attempt sends the same bytes
        assert [int(a.headers["webhook-timestamp"]) for a in arrivals] == sorted(
            int(a.headers["webhook-timestamp"]) for a in arrivals
        )

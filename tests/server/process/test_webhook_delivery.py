"""Webhook delivery by real `wattfare serve` processes to a real receiver on 127.0.0.1.

Events come from real API calls (a test user's first chat completion approves its connection, `DELETE
/connections/{user}` revokes it, settles announce budget thresholds); each process's delivery loop signs and posts
them, and the receiver (`tests.support.webhook_receiver`) checks them as an app's backend would, with the SDK's
`wattfare.webhooks.verify`. The endpoint is registered through the store before the servers start, as the console
would; the servers load the same vault key from the same database, so the secret it shows signs every delivery.

What is proven: the wire (signed, the documented body, no prompt); at-least-once across `kill -9` (the lease runs
out and another process sends the event again under its id, and once delivered it is never sent again); exactly
once with two instances claiming from one database (SQLite file and PostgreSQL); exactly one `budget.threshold`
per share crossed under a storm of concurrent settles; and the retry of a failing endpoint under the same id.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import anyio
import httpx
import pytest

from tests.support.standin_upstream import StandIn
from tests.support.wattfare_server import (
    CLIENT_LIMITS,
    Instance,
    database_url_for,
    launch,
    provision_async,
    running,
)
from tests.support.webhook_receiver import Arrival, WebhookReceiver, webhook_receiver
from wattfare import webhooks
from wattfare.server.access.app_registration import ProvisionedApp
from wattfare.server.billing.key_vault import KeyVault, vault_key
from wattfare.server.instants import utc_now
from wattfare.server.store import Store, open_store
from wattfare.server.store.webhook_records import DeliveryRecord
from wattfare.server.webhooks.endpoints import EndpointWithSecret, add_endpoint

pytestmark = [pytest.mark.xdist_group("webhooks"), pytest.mark.anyio]

T = TypeVar("T")
# Each process looks for due deliveries five times a second.
FAST = {"WATTFARE_WEBHOOK_POLL_SECONDS": "0.2"}
ARRIVAL = 30.0  # generous: a loaded machine, and processes starting
QUIET = 1.5  # after everything arrived, how long a duplicate is given to show up (several polls of every process)


# ------------------------------------------------------------------------------------------ the test's side


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[Store]:
    """The servers' database, opened by the test, as the console's process would."""
    store = open_store(database_url)
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


async def register(database_url: str, app: ProvisionedApp, url: str) -> EndpointWithSecret:
    """A test-mode endpoint for `app` at `url`, its secret sealed with the vault key the servers load too."""
    async with opened(database_url) as store:
        vault = KeyVault()
        vault.load(await vault_key(store, None))
        return await add_endpoint(store, vault, app.app.id, "test", url, "", utc_now())


async def deliveries(database_url: str, hook: EndpointWithSecret) -> list[DeliveryRecord]:
    """Every delivery to the endpoint: one per event its app made in test mode since it was registered."""
    async with opened(database_url) as store:
        return await store.recent_deliveries(hook.endpoint.app_id, hook.endpoint.id, limit=1000)


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    within: float,
    what: str,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> T:
    """Poll `check` until it returns something other than None (or False); return that."""
    with anyio.move_on_after(within):
        while not (found := await check()):
            await anyio.sleep(0.1)
        return found
    raise AssertionError(f"{what}: not within {within} s" + (f"; {await explain()}" if explain else ""))


async def all_delivered(
    database_url: str, hook: EndpointWithSecret, receiver: WebhookReceiver, count: int | None = None
) -> list[DeliveryRecord]:
    """Wait until every delivery row (`count` of them, if given) is delivered and answered 2xx by the receiver."""

    async def done() -> list[DeliveryRecord] | None:
        records = await deliveries(database_url, hook)
        if count is not None and len(records) != count:
            return None
        ok = receiver.delivered_counts()
        if records and all(r.state == "delivered" and ok[r.event_id] for r in records):
            return records
        return None

    async def explain() -> str:
        records = await deliveries(database_url, hook)
        ok = receiver.delivered_counts()
        pending = [(r.event_id, r.type, r.state, r.attempts, r.last_error) for r in records if not ok[r.event_id]]
        return f"{len(records)} deliveries (wanted {count}), not answered 2xx: {pending}, received: {dict(ok)}"

    return await eventually(done, ARRIVAL, "every event delivered", explain)


def client(instance: Instance, app: ProvisionedApp) -> httpx.AsyncClient:
    """An API client of one instance, with the app's test secret key."""
    headers = {"Authorization": f"Bearer {app.secret_keys['test']}"}
    return httpx.AsyncClient(base_url=instance.api_url, headers=headers, limits=CLIENT_LIMITS, timeout=60)


async def chat(api: httpx.AsyncClient, user: str, content: str = "hello", **body: object) -> httpx.Response:
    """A chat completion as `user` (a test user's first one approves its connection)."""
    payload = {"model": "standin/ok", "messages": [{"role": "user", "content": content}], **body}
    return await api.post("/chat/completions", json=payload, headers={"Wattfare-User": user})


def first_arrivals(arrivals: list[Arrival]) -> dict[str, Arrival]:
    """One arrival per `webhook-id` (the first), as a receiver deduplicating retries keeps them."""
    kept: dict[str, Arrival] = {}
    for arrival in arrivals:
        kept.setdefault(arrival.webhook_id, arrival)
    return kept


# ------------------------------------------------------------------------------------------ the tests


async def test_events_of_real_api_calls_arrive_signed_in_the_documented_shape_without_the_prompt(
    tmp_path: Path, standin: StandIn, standin_env: dict[str, str]
) -> None:
    run = uuid.uuid4().hex[:8]
    user, marker = f"hook-{run}", f"purple-giraffe-{run}"
    url = database_url_for(tmp_path / "wattfare.db")
    app = await provision_async(url)
    with webhook_receiver() as receiver:
        hook = await register(url, app, receiver.url)
        with running([launch("server", tmp_path, {**standin_env, **FAST, "WATTFARE_DATABASE_URL": url})]) as [server]:
            async with client(server, app) as api:
                answer = await chat(api, user, f"Tell me everything about the {marker}.")
                assert answer.status_code == 200, answer.text
                assert marker in json.dumps(standin.stats()["last_request"])  # the prompt really went out
                assert (await api.delete(f"/connections/{user}")).status_code == 204
            await all_delivered(url, hook, receiver, count=2)
            assert "Traceback" not in server.log_text()

    by_id = first_arrivals(receiver.arrivals())
    assert len(by_id) == 2
    events = {arrival.webhook_id: arrival.verify(hook.secret) for arrival in by_id.values()}
    approved, revoked = sorted(events.values(), key=lambda event: event.type)
    assert isinstance(approved, webhooks.ConnectionApproved)
    assert isinstance(revoked, webhooks.ConnectionRevoked)
    assert approved.connection.id == revoked.connection.id
    assert (approved.connection.state, revoked.connection.state) == ("active", "revoked")
    for event in (approved, revoked):
        assert (event.mode, event.app_id, event.connection.app_user_id) == ("test", app.app.id, user)
        assert event.connection.monthly_usd == Decimal("10")  # the app's default test cap
    for webhook_id, arrival in by_id.items():
        body = arrival.json()
        assert set(body) == {"id", "type", "timestamp", "mode", "appId", "data"}
        assert body["id"] == webhook_id == events[webhook_id].id
        assert webhook_id.startswith("msg_")
        assert (body["mode"], body["appId"]) == ("test", app.app.id)
        assert body["data"]["connection"]["appUserId"] == user
        assert body["data"]["connection"]["limits"] == {"monthlyUsd": 10}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["timestamp"])
        assert arrival.headers["content-type"] == "application/json"
        assert arrival.headers["user-agent"].startswith("Wattfare-Webhooks/")
        assert re.fullmatch(r"v1,[A-Za-z0-9+/]+=*", arrival.headers["webhook-signature"])
        assert re.fullmatch(r"\d+", arrival.headers["webhook-timestamp"])
        assert marker not in arrival.body.decode()
        assert "giraffe" not in arrival.body.decode()
        # The signature is what makes it Wattfare's: another secret, or a body changed in transit, fails.
        other = "whsec_" + "A" * 43 + "="
        with pytest.raises(webhooks.WebhookVerificationError):
            arrival.verify(other)
        with pytest.raises(webhooks.WebhookVerificationError):
            webhooks.verify(arrival.body.replace(b'"test"', b'"live"'), arrival.headers, hook.secret)


async def test_a_delivery_cut_by_kill_9_is_sent_again_under_its_id_and_delivered_exactly_once(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    url = database_url_for(tmp_path / "wattfare.db")
    app = await provision_async(url)
    # A 1 s send timeout makes the lease 7 s (2 x timeout + 5): the restarted process may claim it after that.
    env = {**standin_env, **FAST, "WATTFARE_WEBHOOK_TIMEOUT_SECONDS": "1", "WATTFARE_DATABASE_URL": url}
    run = uuid.uuid4().hex[:8]
    with webhook_receiver() as receiver:
        hook = await register(url, app, receiver.url)
        receiver.hang()  # the first request is held open, never answered
        with running([launch("first", tmp_path, env)]) as [first]:
            async with client(first, app) as api:
                assert (await chat(api, f"kill-{run}-a")).status_code == 200
            [held] = await receiver.wait_until(lambda arrivals: len(arrivals) >= 1, ARRIVAL, "the first attempt")
            first.kill_hard()  # mid-delivery: the process dies holding the claim
        assert held.status is None
        receiver.release()
        with running([launch("second", tmp_path, env)]) as [second]:
            async with client(second, app) as api:
                assert (await chat(api, f"kill-{run}-b")).status_code == 200
                assert (await api.delete(f"/connections/kill-{run}-a")).status_code == 204
            await all_delivered(url, hook, receiver, count=3)
            await anyio.sleep(QUIET)  # room for a second delivery of anything, were one coming
            records = await deliveries(url, hook)
            assert "Traceback" not in second.log_text()

    produced = {record.event_id for record in records}
    assert len(produced) == 3
    assert {record.state for record in records} == {"delivered"}
    # Every event arrived at least once, and each was answered 2xx exactly once: never lost, never delivered twice.
    assert receiver.ids() == produced
    assert receiver.delivered_counts() == Counter(dict.fromkeys(produced, 1))
    # The held event came again under the same id, with the same bytes, and both attempts verify.
    attempts = receiver.of(held.webhook_id)
    assert len(attempts) >= 2
    assert attempts[0] is held
    assert {attempt.body for attempt in attempts} == {held.body}
    assert [attempt.answered_ok for attempt in attempts] == [False] * (len(attempts) - 1) + [True]
    for attempt in attempts:
        event = attempt.verify(hook.secret)
        assert isinstance(event, webhooks.ConnectionApproved)
        assert event.connection.app_user_id == f"kill-{run}-a"


async def test_two_instances_on_one_database_deliver_each_event_exactly_once(
    tmp_path: Path, database_url: str, standin_env: dict[str, str]
) -> None:
    users = [f"pair-{uuid.uuid4().hex[:8]}-{index}" for index in range(20)]
    app = await provision_async(database_url)
    env = {**standin_env, **FAST, "WATTFARE_DATABASE_URL": database_url}
    with webhook_receiver() as receiver:
        hook = await register(database_url, app, receiver.url)
        with running([launch(f"instance-{index}", tmp_path, env) for index in range(2)]) as instances:
            async with client(instances[0], app) as first, client(instances[1], app) as second:

                async def approve_then_revoke(index: int, user: str) -> None:
                    # Half the requests to each instance: each user approved on one and revoked on the other.
                    here, there = (first, second) if index % 2 == 0 else (second, first)
                    answer = await chat(here, user)
                    assert answer.status_code == 200, answer.text
                    assert (await there.delete(f"/connections/{user}")).status_code == 204

                with anyio.fail_after(60):
                    async with anyio.create_task_group() as group:
                        for index, user in enumerate(users):
                            group.start_soon(approve_then_revoke, index, user)
            await all_delivered(database_url, hook, receiver, count=2 * len(users))
            await anyio.sleep(QUIET)
            records = await deliveries(database_url, hook)
            logs = "".join(instance.log_text() for instance in instances)
    assert "Traceback" not in logs

    produced = {record.event_id for record in records}
    assert len(produced) == 2 * len(users)
    assert Counter(arrival.webhook_id for arrival in receiver.arrivals()) == Counter(dict.fromkeys(produced, 1))
    types = Counter(arrival.verify(hook.secret).type for arrival in receiver.arrivals())
    assert types == {"connection.approved": len(users), "connection.revoked": len(users)}


# The stand-in's answer costs about $0.00005 but a request holds its prompt's bound, about $0.000165: so the cap
# admits about 12 requests at a time, and 100 of them spend it to within one hold (over 90%), crossing 80% once.
STORM_CAP_USD = "0.002"
STORM_REQUESTS = 100


async def test_a_storm_of_concurrent_requests_announces_each_threshold_exactly_once(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    user = f"storm-{uuid.uuid4().hex[:8]}"
    url = database_url_for(tmp_path / "wattfare.db")
    app = await provision_async(url, test_cap_usd=STORM_CAP_USD)
    statuses: list[int] = []
    with webhook_receiver() as receiver:
        hook = await register(url, app, receiver.url)
        with running([launch("server", tmp_path, {**standin_env, **FAST, "WATTFARE_DATABASE_URL": url})]) as [server]:
            async with client(server, app) as api:

                async def one() -> None:
                    statuses.append((await chat(api, user, "threshold storm", max_tokens=20)).status_code)

                with anyio.fail_after(60):
                    async with anyio.create_task_group() as group:
                        for _ in range(STORM_REQUESTS):
                            group.start_soon(one)
            await receiver.wait_until(
                lambda arrivals: any(b'"percent":80' in arrival.body for arrival in arrivals), ARRIVAL, "80%"
            )
            await anyio.sleep(QUIET)  # settles still being written would announce within this
            records = await all_delivered(url, hook, receiver)
            assert "Traceback" not in server.log_text()

    assert set(statuses) <= {200, 402, 429}
    assert statuses.count(200) > 0
    events = [arrival.verify(hook.secret) for arrival in first_arrivals(receiver.arrivals()).values()]
    assert len(events) == len(records)  # every event made was received
    thresholds = [event for event in events if isinstance(event, webhooks.BudgetThreshold)]
    assert {event.connection.app_user_id for event in thresholds} == {user}
    percents = Counter(event.percent for event in thresholds)
    assert percents[80] == 1
    assert percents[50] == 1
    assert percents[100] <= 1
    assert set(percents) <= {50, 80, 100}
    cap = Decimal(STORM_CAP_USD)
    [at_80] = [event for event in thresholds if event.percent == 80]
    assert cap * Decimal("0.8") <= at_80.spent_usd <= cap
    assert at_80.connection.monthly_usd == cap


async def test_a_failing_endpoint_gets_the_retry_five_seconds_later_under_the_same_id(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    url = database_url_for(tmp_path / "wattfare.db")
    app = await provision_async(url)
    with webhook_receiver() as receiver:
        receiver.answer_with(500)
        hook = await register(url, app, receiver.url)
        with running([launch("server", tmp_path, {**standin_env, **FAST, "WATTFARE_DATABASE_URL": url})]) as [server]:
            async with client(server, app) as api:
                assert (await chat(api, f"failing-{uuid.uuid4().hex[:8]}")).status_code == 200
            await receiver.wait_until(lambda a: len(a) >= 2, ARRIVAL, "the first attempt and its retry")

            async def second_failure_recorded() -> DeliveryRecord | None:
                [record] = await deliveries(url, hook)
                return record if record.attempts == 2 else None

            record = await eventually(second_failure_recorded, ARRIVAL, "the retry's failure recorded")
            assert (record.state, record.last_status, record.last_error) == ("pending", 500, "answered 500")
            assert record.last_attempt_at is not None
            # The next try is the schedule's third step, 5 minutes after the second attempt.
            assert (record.next_attempt_at - record.last_attempt_at).total_seconds() == 300
            async with opened(url) as store:
                endpoint = await store.webhook_endpoint(app.app.id, hook.endpoint.id)
                assert endpoint is not None
                assert endpoint.state == "enabled"  # failing only once the whole schedule is spent

                # Sent again by hand once the endpoint is fixed: delivered, still under the same id.
                receiver.answer_with(200)
                assert await store.resend_delivery(app.app.id, hook.endpoint.id, record.event_id, utc_now())
            [delivered] = await all_delivered(url, hook, receiver, count=1)
            assert "Traceback" not in server.log_text()

    assert (delivered.attempts, delivered.last_status) == (3, 200)
    arrivals = receiver.arrivals()
    assert [arrival.status for arrival in arrivals] == [500, 500, 200]
    assert {arrival.webhook_id for arrival in arrivals} == {record.event_id}
    assert len({arrival.body for arrival in arrivals}) == 1
    for arrival in arrivals:
        assert isinstance(arrival.verify(hook.secret), webhooks.ConnectionApproved)

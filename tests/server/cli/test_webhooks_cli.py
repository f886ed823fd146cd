"""`wattfare webhooks`: add, list, rotate, remove, deliveries and resend, on SQLite and PostgreSQL.

The secret `add` prints must verify what the server's own delivery loop sends to that endpoint (a receiver on
127.0.0.1), so the command and the server must seal and open it with the same key.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.cli import Wattfare, one_error_line, wattfare_over
from tests.support.webhook_receiver import Arrival, webhook_receiver
from wattfare.metering import usd_to_nanos
from wattfare.server.access.keys import new_id
from wattfare.server.app import create_app
from wattfare.server.instants import utc_now
from wattfare.server.services import Services
from wattfare.server.settings import Settings
from wattfare.server.store import Store
from wattfare.server.store.webhook_records import DeliveryRecord, WebhookEndpoint

SIGNING_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/=]+$", re.MULTILINE)
ENDPOINT_ID = re.compile(r"^we_[A-Za-z0-9]+$", re.MULTILINE)


@pytest.fixture
def wattfare(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Wattfare:
    return wattfare_over(database_url, monkeypatch, tmp_path)


@pytest.fixture
def app_id(wattfare: Wattfare) -> str:
    created = wattfare("apps", "create", "Acme").stdout
    return created.split("(", 1)[1].split(")", 1)[0]


def added(wattfare: Wattfare, app_id: str, url: str, *options: str) -> tuple[str, str]:
    """`wattfare webhooks add`: the endpoint id and the secret it printed, each alone on its line."""
    stdout = wattfare("webhooks", "add", app_id, url, *options).stdout
    (endpoint_id,) = ENDPOINT_ID.findall(stdout)
    (secret,) = SIGNING_SECRET.findall(stdout)
    return endpoint_id, secret


def deliver_an_event(wattfare: Wattfare, app_id: str, app_user_id: str) -> int:
    """A server over the command's database: a test user of the app connects, and one delivery round runs."""

    async def run() -> int:
        app = create_app(Settings.from_env({}, database_url=wattfare.database_url))
        services: Services = app.state.services
        await services.start()
        try:
            await services.deliverer.stop()  # no rounds of its own: the one below sends what the event made
            cap = usd_to_nanos("5")
            await services.store.approve_connection(new_id("conn"), app_id, app_user_id, "test", cap, utc_now())
            return await services.deliverer.run_once()
        finally:
            await services.stop()

    return asyncio.run(run())


def endpoint(wattfare: Wattfare, app_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    async def read(store: Store) -> WebhookEndpoint | None:
        return await store.webhook_endpoint(app_id, endpoint_id)

    return wattfare.store(read)


def deliveries(wattfare: Wattfare, app_id: str, endpoint_id: str) -> list[DeliveryRecord]:
    async def read(store: Store) -> list[DeliveryRecord]:
        return await store.recent_deliveries(app_id, endpoint_id)

    return wattfare.store(read)


def verified(secret: str, delivery: Arrival) -> dict[str, Any]:
    return Webhook(secret).verify(delivery.body, delivery.headers)


def listed(wattfare: Wattfare, app_id: str, *options: str) -> list[list[str]]:
    lines = wattfare("webhooks", "list", app_id, *options).stdout.splitlines()
    if lines == ["This app has no webhook endpoints."]:
        return []
    assert lines[0].split() == ["ID", "MODE", "STATE", "URL"]
    return [line.split() for line in lines[1:]]


def test_add_prints_the_id_and_a_secret_that_verifies_the_servers_delivery(wattfare: Wattfare, app_id: str) -> None:
    with webhook_receiver() as hook:
        endpoint_id, secret = added(wattfare, app_id, hook.url, "--description", "billing")

        assert deliver_an_event(wattfare, app_id, "user-7") == 1

        (delivery,) = hook.arrivals()
        event = verified(secret, delivery)
        assert (event["type"], event["appId"], event["mode"]) == ("connection.approved", app_id, "test")
        assert event["data"]["connection"]["appUserId"] == "user-7"
    found = endpoint(wattfare, app_id, endpoint_id)
    assert found is not None
    assert (found.mode, found.url, found.description, found.state) == ("test", hook.url, "billing", "enabled")
    assert secret not in found.sealed_secret


def test_add_prints_the_secret_whole_on_a_line_of_its_own(wattfare: Wattfare, app_id: str) -> None:
    stdout = wattfare("webhooks", "add", app_id, "https://hooks.example/live", "--mode", "live").stdout

    (secret,) = SIGNING_SECRET.findall(stdout)
    (endpoint_id,) = ENDPOINT_ID.findall(stdout)
    assert f"\n{secret}\n" in stdout
    assert f"\n{endpoint_id}\n" in stdout
    assert "not shown again" in stdout
    assert listed(wattfare, app_id) == [[endpoint_id, "live", "enabled", "https://hooks.example/live"]]
    assert secret not in wattfare("webhooks", "list", app_id).stdout


def test_list_shows_each_mode_or_the_one_asked_for(wattfare: Wattfare, app_id: str) -> None:
    assert listed(wattfare, app_id) == []
    test_id, _ = added(wattfare, app_id, "http://127.0.0.1:9/test")
    live_id, _ = added(wattfare, app_id, "https://hooks.example/live", "--mode", "live")

    assert listed(wattfare, app_id) == [
        [test_id, "test", "enabled", "http://127.0.0.1:9/test"],
        [live_id, "live", "enabled", "https://hooks.example/live"],
    ]
    assert [row[0] for row in listed(wattfare, app_id, "--mode", "live")] == [live_id]
    assert [row[0] for row in listed(wattfare, app_id, "--mode", "test")] == [test_id]


def test_rotate_prints_a_new_secret_and_the_old_one_signs_too(wattfare: Wattfare, app_id: str) -> None:
    with webhook_receiver() as hook:
        endpoint_id, old = added(wattfare, app_id, hook.url)

        rotated = wattfare("webhooks", "rotate", app_id, endpoint_id).stdout

        (new,) = SIGNING_SECRET.findall(rotated)
        assert new != old
        assert f"\n{new}\n" in rotated
        assert "24 hours" in rotated
        deliver_an_event(wattfare, app_id, "user-rotated")
        (delivery,) = hook.arrivals()
        assert verified(new, delivery)["type"] == "connection.approved"
        assert verified(old, delivery)["type"] == "connection.approved"


def test_remove_stops_deliveries_to_the_endpoint(wattfare: Wattfare, app_id: str) -> None:
    with webhook_receiver() as hook:
        endpoint_id, _ = added(wattfare, app_id, hook.url)

        removed = wattfare("webhooks", "remove", app_id, endpoint_id).stdout

        assert f"Removed webhook endpoint {endpoint_id}" in removed
        assert listed(wattfare, app_id) == []
        assert endpoint(wattfare, app_id, endpoint_id) is None
        assert deliver_an_event(wattfare, app_id, "user-after") == 0
        assert hook.arrivals() == []
    again = wattfare("webhooks", "remove", app_id, endpoint_id, code=1)
    assert f"has no webhook endpoint '{endpoint_id}'" in one_error_line(again)


def test_deliveries_are_listed_and_one_is_resent(wattfare: Wattfare, app_id: str) -> None:
    with webhook_receiver() as hook:
        endpoint_id, _ = added(wattfare, app_id, hook.url)
        assert "No deliveries" in wattfare("webhooks", "deliveries", app_id, endpoint_id).stdout
        deliver_an_event(wattfare, app_id, "user-9")
        (delivery,) = hook.arrivals()
        event_id = delivery.webhook_id

    table = wattfare("webhooks", "deliveries", app_id, endpoint_id).stdout.splitlines()
    assert table[0].split() == ["EVENT", "TYPE", "CREATED", "STATE", "ATTEMPTS", "STATUS", "NEXT", "ERROR"]
    (row,) = table[1:]
    assert row.split()[:2] == [event_id, "connection.approved"]
    assert row.split()[3:7] == ["delivered", "1", "200", "-"]

    resent = wattfare("webhooks", "resend", app_id, endpoint_id, event_id).stdout

    assert f"Queued {event_id}" in resent
    (record,) = deliveries(wattfare, app_id, endpoint_id)
    assert (record.event_id, record.state) == (event_id, "pending")
    assert record.next_attempt_at <= utc_now()
    unknown = wattfare("webhooks", "resend", app_id, endpoint_id, "msg_nobody", code=1)
    assert "has no delivery of 'msg_nobody'" in one_error_line(unknown)


@pytest.mark.parametrize(
    "command",
    [
        ("add", "app_nope", "http://127.0.0.1:9/x"),
        ("list", "app_nope"),
        ("rotate", "app_nope", "we_x"),
        ("remove", "app_nope", "we_x"),
        ("deliveries", "app_nope", "we_x"),
        ("resend", "app_nope", "we_x", "msg_x"),
    ],
)
def test_an_unknown_app_is_a_one_line_error(wattfare: Wattfare, app_id: str, command: tuple[str, ...]) -> None:
    refused = wattfare("webhooks", *command, code=1)

    assert one_error_line(refused) == "Error: no app has the id 'app_nope' (see `wattfare apps list`)"


@pytest.mark.parametrize("command", ["rotate", "remove", "deliveries", "resend"])
def test_an_unknown_or_another_apps_endpoint_is_a_one_line_error(wattfare: Wattfare, app_id: str, command: str) -> None:
    other_app = wattfare("apps", "create", "Other").stdout.split("(", 1)[1].split(")", 1)[0]
    theirs, _ = added(wattfare, other_app, "http://127.0.0.1:9/theirs")
    extra = ("msg_x",) if command == "resend" else ()

    for endpoint_id in ("we_nope", theirs):
        refused = wattfare("webhooks", command, app_id, endpoint_id, *extra, code=1)
        assert one_error_line(refused).startswith(f"Error: app {app_id} has no webhook endpoint '{endpoint_id}'")
    assert endpoint(wattfare, other_app, theirs) is not None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("ftp://files.example/x",), "URL"),
        (("http://user:pw@hooks.example/",), "URL"),
        (("http://hooks.example/\x07",), "URL"),
        (("http://hooks.example/live", "--mode", "live"), "URL"),
        (("http://127.0.0.1:9/x", "--description", "d" * 201), "'--description'"),
        (("http://127.0.0.1:9/x", "--description", "bell\x07"), "'--description'"),
        (("http://127.0.0.1:9/x", "--mode", "prod"), "'--mode'"),
    ],
)
def test_a_bad_url_or_option_is_a_usage_error_and_adds_nothing(
    wattfare: Wattfare, app_id: str, options: tuple[str, ...], named: str
) -> None:
    refused = wattfare("webhooks", "add", app_id, *options, code=2)

    assert f"Invalid value for {named}" in one_error_line(refused)
    assert "whsec_" not in refused.output
    assert listed(wattfare, app_id) == []

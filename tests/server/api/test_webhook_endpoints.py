"""`/api/v1/webhooks/endpoints`: an app's endpoints over HTTP with its secret key, on both stores.

Secrets are answered once; the key's mode and app scope everything (another's endpoint is a 404); deliveries are
sent by the server's own delivery loop to a real receiver on 127.0.0.1 (`tests.support.webhook_receiver`), and
verified with the `standardwebhooks` package.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.server.api.envelope import assert_error
from tests.support import wattfare_server
from tests.support.wattfare_server import Served, database_url_for, provision_async, served
from tests.support.webhook_receiver import Arrival, webhook_receiver
from wattfare.server.store.records import Mode

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

ENDPOINTS = "/webhooks/endpoints"
ENDPOINT_FIELDS = {"id", "url", "description", "mode", "state", "failingSince", "createdAt"}
DELIVERY_FIELDS = {
    "eventId",
    "type",
    "createdAt",
    "state",
    "attempts",
    "nextAttemptAt",
    "lastAttemptAt",
    "lastStatus",
    "lastError",
    "deliveredAt",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------------------------------- the server


@dataclass
class Hooks:
    """The app in-process with a client on its API, its services (for the delivery loop) and its keys."""

    client: httpx.AsyncClient
    server: Served

    def key(self, mode: Mode = "test", kind: str = "secret") -> dict[str, str]:
        keys = self.server.app.secret_keys if kind == "secret" else self.server.app.publishable_keys
        return {"Authorization": f"Bearer {keys[mode]}"}

    async def create(self, url: str, mode: Mode = "test", **more: object) -> dict[str, Any]:
        made = await self.client.post(ENDPOINTS, json={"url": url, **more}, headers=self.key(mode))
        assert made.status_code == 201, made.text
        return made.json()

    async def connect(self, app_user_id: str) -> None:
        """A test-mode user approves a connection: the app's `connection.approved` event."""
        minted = await self.client.post("/sessions", json={"appUserId": app_user_id}, headers=self.key())
        token = minted.json()["token"]
        approved = await self.client.post("/connections", headers={"Authorization": f"Bearer {token}"})
        assert approved.status_code == 200, approved.text

    async def deliver(self) -> int:
        return await self.server.services.deliverer.run_once()


@asynccontextmanager
async def hooks(tmp_path: Path) -> AsyncIterator[Hooks]:
    """The server over a fresh database (the store `each_store` picks); its delivery loop runs when told to."""
    database = wattfare_server.database_override or database_url_for(tmp_path / "wattfare.db")
    async with (
        served(database) as server,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=server.asgi), base_url="http://wattfare.test/api/v1"
        ) as client,
    ):
        # No rounds of its own: each test sends what is due by calling `run_once`, when it chooses.
        await server.services.deliverer.stop()
        yield Hooks(client, server)


def verified(secret: str, delivery: Arrival) -> dict[str, Any]:
    """The delivery's event, once its signature is checked with `secret` by the `standardwebhooks` package."""
    return Webhook(secret).verify(delivery.body, delivery.headers)


# ------------------------------------------------------------------------------------------- tests


async def test_an_endpoint_is_made_with_its_secret_which_is_never_answered_again(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        made = await wf.create("https://hooks.example/wattfare", description="  billing\nservice ")

        assert set(made) == ENDPOINT_FIELDS | {"secret"}
        assert made["secret"].startswith("whsec_")
        assert made["id"].startswith("we_")
        assert (made["mode"], made["state"], made["failingSince"]) == ("test", "enabled", None)
        assert made["description"] == "billing service"
        one = await wf.client.get(f"{ENDPOINTS}/{made['id']}", headers=wf.key())
        listed = await wf.client.get(ENDPOINTS, headers=wf.key())
        assert one.status_code == 200
        assert one.json() == {k: v for k, v in made.items() if k != "secret"}
        assert listed.json() == {"data": [one.json()]}
        for answer in (one, listed):
            assert made["secret"] not in answer.text
            assert "secret" not in answer.text


async def test_the_keys_mode_picks_the_endpoints_it_sees(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        test = await wf.create("http://127.0.0.1:9/test-hooks")
        live = await wf.create("https://hooks.example/live", mode="live")

        test_list = (await wf.client.get(ENDPOINTS, headers=wf.key("test"))).json()["data"]
        live_list = (await wf.client.get(ENDPOINTS, headers=wf.key("live"))).json()["data"]
        assert [e["id"] for e in test_list] == [test["id"]]
        assert [(e["id"], e["mode"]) for e in live_list] == [(live["id"], "live")]
        other_modes = [
            await wf.client.get(f"{ENDPOINTS}/{test['id']}", headers=wf.key("live")),
            await wf.client.delete(f"{ENDPOINTS}/{live['id']}", headers=wf.key("test")),
        ]
        for answer in other_modes:
            assert_error(answer, 404, "invalid_request")
        assert (await wf.client.get(f"{ENDPOINTS}/{live['id']}", headers=wf.key("live"))).status_code == 200


async def test_another_apps_secret_key_finds_none_of_this_apps_endpoints(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        made = await wf.create("http://127.0.0.1:9/hooks")
        other = await provision_async(wf.server.settings.database_url, name="Other app")
        theirs = {"Authorization": f"Bearer {other.secret_keys['test']}"}
        one = f"{ENDPOINTS}/{made['id']}"

        answers = [
            await wf.client.get(one, headers=theirs),
            await wf.client.patch(one, json={"enabled": False}, headers=theirs),
            await wf.client.post(f"{one}/rotate-secret", headers=theirs),
            await wf.client.get(f"{one}/deliveries", headers=theirs),
            await wf.client.post(f"{one}/deliveries/msg_x/resend", headers=theirs),
            await wf.client.delete(one, headers=theirs),
        ]

        for answer in answers:
            assert_error(answer, 404, "invalid_request")
        assert (await wf.client.get(ENDPOINTS, headers=theirs)).json() == {"data": []}
        still = await wf.client.get(one, headers=wf.key())
        assert still.json()["state"] == "enabled"


async def test_an_endpoint_is_changed_disabled_and_enabled_again(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        made = await wf.create("http://127.0.0.1:9/old", description="old")
        one = f"{ENDPOINTS}/{made['id']}"

        change = {"url": "http://127.0.0.1:9/new", "description": ""}
        changed = await wf.client.patch(one, json=change, headers=wf.key())
        assert changed.status_code == 200, changed.text
        assert (changed.json()["url"], changed.json()["description"], changed.json()["state"]) == (
            "http://127.0.0.1:9/new",
            "",
            "enabled",
        )
        disabled = await wf.client.patch(one, json={"enabled": False}, headers=wf.key())
        assert (disabled.json()["state"], disabled.json()["url"]) == ("disabled", "http://127.0.0.1:9/new")
        untouched = await wf.client.patch(one, json={"description": "still off"}, headers=wf.key())
        assert untouched.json()["state"] == "disabled"
        assert (await wf.client.patch(one, json={}, headers=wf.key())).json() == untouched.json()
        enabled = await wf.client.patch(one, json={"enabled": True}, headers=wf.key())
        assert enabled.json()["state"] == "enabled"
        assert set(enabled.json()) == ENDPOINT_FIELDS
        assert_error(await wf.client.patch(f"{ENDPOINTS}/we_nope", json={}, headers=wf.key()), 404, "invalid_request")


async def test_a_disabled_endpoint_is_sent_nothing(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        async with hooks(tmp_path) as wf:
            made = await wf.create(hook.url)
            await wf.client.patch(f"{ENDPOINTS}/{made['id']}", json={"enabled": False}, headers=wf.key())
            await wf.connect("user-off")
            await wf.deliver()

            assert hook.arrivals() == []
            listed = await wf.client.get(f"{ENDPOINTS}/{made['id']}/deliveries", headers=wf.key())
            assert listed.json() == {"data": []}


async def test_a_failing_endpoint_shows_since_when_and_a_change_enables_it(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        made = await wf.create("http://127.0.0.1:9/down")
        await wf.connect("user-failing")
        (delivery,) = (await wf.client.get(f"{ENDPOINTS}/{made['id']}/deliveries", headers=wf.key())).json()["data"]
        now = wf.server.services.clock()
        # The last retry given up (what the loop records after about a day of refusals).
        await wf.server.services.store.delivery_failed(delivery["eventId"], made["id"], 503, "answered 503", now, None)

        failing = (await wf.client.get(f"{ENDPOINTS}/{made['id']}", headers=wf.key())).json()
        assert failing["state"] == "failing"
        assert failing["failingSince"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
        fix = {"url": "http://127.0.0.1:9/up"}
        fixed = await wf.client.patch(f"{ENDPOINTS}/{made['id']}", json=fix, headers=wf.key())
        assert (fixed.json()["state"], fixed.json()["failingSince"]) == ("enabled", None)


async def test_deliveries_are_listed_signed_with_the_secret_and_resent_under_the_same_id(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        async with hooks(tmp_path) as wf:
            made = await wf.create(hook.url)
            deliveries = f"{ENDPOINTS}/{made['id']}/deliveries"
            assert (await wf.client.get(deliveries, headers=wf.key())).json() == {"data": []}

            await wf.connect("user-42")
            assert await wf.deliver() == 1

            (first,) = hook.arrivals()
            event = verified(made["secret"], first)
            app_id = wf.server.app.app.id
            assert (event["type"], event["appId"], event["mode"]) == ("connection.approved", app_id, "test")
            assert event["data"]["connection"]["appUserId"] == "user-42"
            (listed,) = (await wf.client.get(deliveries, headers=wf.key())).json()["data"]
            assert set(listed) == DELIVERY_FIELDS
            assert listed["eventId"] == first.webhook_id == event["id"]
            assert (listed["type"], listed["state"], listed["attempts"], listed["lastStatus"]) == (
                "connection.approved",
                "delivered",
                1,
                200,
            )
            assert listed["deliveredAt"] is not None
            assert listed["lastError"] is None

            resent = await wf.client.post(f"{deliveries}/{listed['eventId']}/resend", headers=wf.key())
            assert resent.status_code == 202
            assert resent.json() == {"resent": True}
            assert await wf.deliver() == 1
            first_again, second = hook.arrivals()
            assert first_again == first
            assert second.webhook_id == listed["eventId"]
            assert verified(made["secret"], second)["id"] == listed["eventId"]
            assert (await wf.client.get(deliveries, headers=wf.key())).json()["data"][0]["attempts"] == 2
            unknown = await wf.client.post(f"{deliveries}/msg_nobody/resend", headers=wf.key())
            assert_error(unknown, 404, "invalid_request")


async def test_the_deliveries_limit_is_a_whole_number_from_1_to_100(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        made = await wf.create("http://127.0.0.1:9/limits")
        for user in ("a", "b", "c"):
            await wf.connect(user)
        deliveries = f"{ENDPOINTS}/{made['id']}/deliveries"

        assert len((await wf.client.get(deliveries, headers=wf.key())).json()["data"]) == 3
        two = (await wf.client.get(deliveries, params={"limit": "2"}, headers=wf.key())).json()["data"]
        assert len(two) == 2
        for bad in ("0", "101", "-1", "2.0", "abc", "", "9" * 5000, "٣"):
            answer = await wf.client.get(deliveries, params={"limit": bad}, headers=wf.key())
            assert_error(answer, 400, "invalid_request", "limit")


async def test_a_rotated_secret_is_answered_once_and_the_old_one_still_signs(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        async with hooks(tmp_path) as wf:
            made = await wf.create(hook.url)

            rotated = await wf.client.post(f"{ENDPOINTS}/{made['id']}/rotate-secret", headers=wf.key())

            assert rotated.status_code == 200
            assert set(rotated.json()) == ENDPOINT_FIELDS | {"secret"}
            new = rotated.json()["secret"]
            assert new.startswith("whsec_")
            assert new != made["secret"]
            assert "secret" not in (await wf.client.get(f"{ENDPOINTS}/{made['id']}", headers=wf.key())).text
            await wf.connect("user-rotated")
            await wf.deliver()
            (delivery,) = hook.arrivals()
            assert len(delivery.headers["webhook-signature"].split()) == 2  # new first, then old, for a day
            assert verified(new, delivery)["type"] == "connection.approved"
            assert verified(made["secret"], delivery)["type"] == "connection.approved"
            with pytest.raises(WebhookVerificationError):
                verified("whsec_" + "A" * 43 + "=", delivery)
            missing = await wf.client.post(f"{ENDPOINTS}/we_nope/rotate-secret", headers=wf.key())
            assert_error(missing, 404, "invalid_request")


async def test_a_deleted_endpoint_is_gone_and_sent_nothing_more(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        async with hooks(tmp_path) as wf:
            made = await wf.create(hook.url)
            one = f"{ENDPOINTS}/{made['id']}"

            deleted = await wf.client.delete(one, headers=wf.key())

            assert deleted.status_code == 204
            assert deleted.content == b""
            assert_error(await wf.client.get(one, headers=wf.key()), 404, "invalid_request")
            assert_error(await wf.client.delete(one, headers=wf.key()), 404, "invalid_request")
            assert_error(await wf.client.get(f"{one}/deliveries", headers=wf.key()), 404, "invalid_request")
            assert (await wf.client.get(ENDPOINTS, headers=wf.key())).json() == {"data": []}
            await wf.connect("user-after")
            await wf.deliver()
            assert hook.arrivals() == []


async def test_an_app_has_at_most_16_endpoints_per_mode(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        for index in range(16):
            await wf.create(f"http://127.0.0.1:9/{index}")

        refused = await wf.client.post(ENDPOINTS, json={"url": "http://127.0.0.1:9/17"}, headers=wf.key())

        assert_error(refused, 400, "invalid_request", "url")
        assert (await wf.create("https://hooks.example/live", mode="live"))["mode"] == "live"


async def test_publishable_keys_and_no_key_are_refused(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        made = await wf.create("http://127.0.0.1:9/hooks")
        one = f"{ENDPOINTS}/{made['id']}"
        for headers in (wf.key(kind="publishable"), wf.key("live", kind="publishable"), {}):
            calls = [
                wf.client.get(ENDPOINTS, headers=headers),
                wf.client.post(ENDPOINTS, json={"url": "http://127.0.0.1:9/x"}, headers=headers),
                wf.client.get(one, headers=headers),
                wf.client.patch(one, json={"enabled": False}, headers=headers),
                wf.client.post(f"{one}/rotate-secret", headers=headers),
                wf.client.get(f"{one}/deliveries", headers=headers),
                wf.client.post(f"{one}/deliveries/msg_x/resend", headers=headers),
                wf.client.delete(one, headers=headers),
            ]
            for answer in await asyncio.gather(*calls):
                assert_error(answer, 401, "auth")
        listed = (await wf.client.get(ENDPOINTS, headers=wf.key())).json()["data"]
        assert [(e["id"], e["state"]) for e in listed] == [(made["id"], "enabled")]


HOSTILE_CREATES: list[tuple[bytes | dict[str, Any], str | None]] = [
    (b"", None),
    (b"not json", None),
    (b'{"url": "http://127.0.0.1:9/x",}', None),
    (b"[]", None),
    (b"null", None),
    (b'"http://127.0.0.1:9/x"', None),
    (b'{"url": "\\ud800"}', None),
    ({}, "url"),
    ({"url": 5}, "url"),
    ({"url": None}, "url"),
    ({"url": ["http://127.0.0.1:9/x"]}, "url"),
    ({"url": ""}, "url"),
    ({"url": "http://127.0.0.1:9/" + "a" * 10_000}, "url"),
    ({"url": "ftp://files.example/hooks"}, "url"),
    ({"url": "hooks.example/no-scheme"}, "url"),
    ({"url": "http://user:pw@hooks.example/"}, "url"),
    ({"url": "http://hooks.example/\x00"}, "url"),
    ({"url": "http://hooks.example/a\nb"}, "url"),
    ({"url": "http://hooks.example/\x85"}, "url"),
    ({"url": "http://hooks.example/\u2028"}, "url"),
    ({"url": "http://hooks.example:99999/"}, "url"),
    ({"url": "http://[::1/"}, "url"),
    ({"url": "http://127.0.0.1:9/x", "description": 5}, "description"),
    ({"url": "http://127.0.0.1:9/x", "description": "d" * 201}, "description"),
    ({"url": "http://127.0.0.1:9/x", "description": "nul\x00here"}, "description"),
    ({"url": "http://127.0.0.1:9/x", "description": ["a"]}, "description"),
    ({"url": "http://127.0.0.1:9/x", "enabled": True}, "enabled"),
    ({"url": "http://127.0.0.1:9/x", "colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("body", "param"), HOSTILE_CREATES)
async def test_a_hostile_body_is_refused_by_name_and_creates_nothing(
    tmp_path: Path, body: bytes | dict[str, Any], param: str | None
) -> None:
    async with hooks(tmp_path) as wf:
        sent = body if isinstance(body, bytes) else None
        answer = await wf.client.post(
            ENDPOINTS, content=sent, json=None if sent is not None else body, headers=wf.key()
        )

        assert_error(answer, 400, "invalid_request", param)
        assert (await wf.client.get(ENDPOINTS, headers=wf.key())).json() == {"data": []}


async def test_a_live_key_registers_only_public_https_urls(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        for url in ("http://hooks.example/live", "https://127.0.0.1/live"):
            refused = await wf.client.post(ENDPOINTS, json={"url": url}, headers=wf.key("live"))
            assert_error(refused, 400, "invalid_request", "url")
        assert (await wf.client.get(ENDPOINTS, headers=wf.key("live"))).json() == {"data": []}
        made = await wf.create("https://hooks.example/live", mode="live")
        one = f"{ENDPOINTS}/{made['id']}"
        downgraded = await wf.client.patch(one, json={"url": "http://hooks.example/live"}, headers=wf.key("live"))
        assert_error(downgraded, 400, "invalid_request", "url")
        assert (await wf.client.get(one, headers=wf.key("live"))).json()["url"] == "https://hooks.example/live"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"enabled": "false"}, "enabled"),
        ({"enabled": 0}, "enabled"),
        ({"enabled": None}, "enabled"),
        ({"url": 5}, "url"),
        ({"url": "ftp://files.example/"}, "url"),
        ({"url": "http://hooks.example/\x01"}, "url"),
        ({"description": {"text": "x"}}, "description"),
        ({"description": "x" * 1000}, "description"),
        ({"secret": "whsec_mine"}, "secret"),
        ({"state": "enabled"}, "state"),
    ],
)
async def test_a_hostile_change_is_refused_by_name_and_changes_nothing(
    tmp_path: Path, body: dict[str, Any], param: str
) -> None:
    async with hooks(tmp_path) as wf:
        made = await wf.create("http://127.0.0.1:9/keep", description="keep")
        one = f"{ENDPOINTS}/{made['id']}"

        assert_error(await wf.client.patch(one, json=body, headers=wf.key()), 400, "invalid_request", param)
        assert (await wf.client.get(one, headers=wf.key())).json() == {k: v for k, v in made.items() if k != "secret"}


async def test_an_oversized_body_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    async with hooks(tmp_path) as wf:
        huge = b'{"url": "http://127.0.0.1:9/' + b"a" * 70_000 + b'"}'
        assert_error(await wf.client.post(ENDPOINTS, content=huge, headers=wf.key()), 413, "invalid_request")
        made = await wf.create("http://127.0.0.1:9/x")
        patched = await wf.client.patch(f"{ENDPOINTS}/{made['id']}", content=huge, headers=wf.key())
        assert_error(patched, 413, "invalid_request")

"""Sessions, connection status and consent: POST /sessions, GET /status, the session-token endpoints."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.server.api.envelope import assert_error
from tests.server.api.tables import row_counts
from tests.support.wattfare_server import InProcess, in_process

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

HELLO = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def usd(value: object) -> Decimal:
    """A JSON number of USD as an exact Decimal (its shortest repr is the decimal the server meant)."""
    assert isinstance(value, int | float)
    assert not isinstance(value, bool)
    return Decimal(str(value))


def next_month_start() -> str:
    now = datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{year:04d}-{month:02d}-01T00:00:00Z"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def session_token(wf: InProcess, app_user_id: str, monthly_usd: object = None, key: str | None = None) -> str:
    body: dict[str, object] = {"appUserId": app_user_id}
    if monthly_usd is not None:
        body["requestLimit"] = {"monthlyUsd": monthly_usd}
    response = await wf.client.post("/sessions", json=body, headers=wf.auth(key))
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def status_of(wf: InProcess, app_user_id: str, key: str | None = None) -> dict[str, Any]:
    response = await wf.client.get("/status", params={"appUserId": app_user_id}, headers=wf.auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def complete(wf: InProcess, app_user_id: str, key: str | None = None) -> httpx.Response:
    return await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(key, user=app_user_id))


# -- POST /sessions


async def test_a_session_has_a_token_a_ten_minute_expiry_and_a_connect_url_carrying_the_token(tmp_path: Path) -> None:
    async with in_process(tmp_path, public_url="https://wattfare.example") as wf:
        response = await wf.client.post("/sessions", json={"appUserId": "alice"}, headers=wf.auth())
        assert response.status_code == 200, response.text
        session = response.json()
        assert set(session) == {"token", "expiresAt", "connectUrl"}
        assert isinstance(session["token"], str)
        assert session["token"].count(".") == 2
        assert isinstance(session["expiresAt"], int)
        assert abs(session["expiresAt"] - (time.time() + 600)) < 30
        url = urlsplit(session["connectUrl"])
        assert f"{url.scheme}://{url.netloc}{url.path}" == "https://wattfare.example/connect"
        assert parse_qs(url.query) == {"session": [session["token"]]}


async def test_each_session_gets_a_fresh_token(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert await session_token(wf, "alice") != await session_token(wf, "alice")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": -1}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": -0.01}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": "10"}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": "NaN"}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": "Infinity"}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": True}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": None}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": [10]}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": 1_000_001}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": 1e30}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {"monthlyUsd": 10**18}}, "requestLimit.monthlyUsd"),
        ({"appUserId": "a", "requestLimit": {}}, "requestLimit"),
        ({"appUserId": "a", "requestLimit": {"monthly_usd": 10}}, "requestLimit"),
        ({"appUserId": "a", "requestLimit": 10}, "requestLimit"),
        ({"requestLimit": {"monthlyUsd": 10}}, "appUserId"),
        ({"appUserId": ""}, "appUserId"),
        ({"appUserId": 42}, "appUserId"),
        ({"appUserId": "x" * 257}, "appUserId"),
        ({"appUserId": "tab\there"}, "appUserId"),
    ],
)
async def test_a_bad_session_request_is_refused_naming_the_field_and_remembers_no_cap(
    tmp_path: Path, body: dict[str, object], param: str
) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/sessions", json=body, headers=wf.auth())
        assert_error(response, 400, "invalid_request", param)
        assert row_counts(tmp_path / "wattfare.db", ("requested_caps",)) == {"requested_caps": 0}


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
async def test_a_cap_json_cannot_hold_as_a_finite_number_is_refused(tmp_path: Path, number: bytes) -> None:
    async with in_process(tmp_path) as wf:
        body = b'{"appUserId": "a", "requestLimit": {"monthlyUsd": ' + number + b"}}"
        response = await wf.client.post("/sessions", content=body, headers=wf.auth())
        assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("monthly_usd", [0.000001, 0.5, 1_000_000])
async def test_caps_from_a_micro_dollar_to_a_million_dollars_are_accepted(tmp_path: Path, monthly_usd: float) -> None:
    async with in_process(tmp_path) as wf:
        token = await session_token(wf, "alice", monthly_usd)
        approved = await wf.client.post("/connections", headers=bearer(token))
        assert approved.status_code == 200, approved.text
        assert usd(approved.json()["limits"]["monthlyUsd"]) == Decimal(str(monthly_usd))


async def test_a_zero_dollar_cap_is_refused_rather_than_shown_as_connected(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = await session_token(wf, "alice", 5)
        refused = await wf.client.post("/connections", json={"monthlyUsd": 0}, headers=bearer(token))
        assert_error(refused, 400, "invalid_request", "monthlyUsd")
        assert (await wf.client.get("/connections", headers=bearer(token))).json()["connected"] is False


# -- GET /status


async def test_status_of_an_unknown_user_is_not_connected_rather_than_an_error(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        status = await status_of(wf, "nobody")
        assert status == {
            "connected": False,
            "state": None,
            "appUserId": "nobody",
            "limits": {"monthlyUsd": None},
            "spentUsd": 0,
            "reservedUsd": 0,
            "remainingUsd": None,
            "resetsAt": next_month_start(),
        }


async def test_status_without_an_app_user_id_names_the_missing_parameter(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.get("/status", headers=wf.auth())
        assert_error(response, 400, "invalid_request", "appUserId")


# -- the session-token flow (test mode)


async def test_a_test_session_token_approves_with_the_suggested_cap(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = await session_token(wf, "carol", 3)
        approved = await wf.client.post("/connections", headers=bearer(token))
        assert approved.status_code == 200, approved.text
        assert approved.json() == {
            "connected": True,
            "state": "active",
            "appUserId": "carol",
            "limits": {"monthlyUsd": 3},
            "spentUsd": 0,
            "reservedUsd": 0,
            "remainingUsd": 3,
            "resetsAt": next_month_start(),
        }
        assert await status_of(wf, "carol") == approved.json()


async def test_the_body_cap_overrides_the_suggested_one_and_the_browser_reads_it_back(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = await session_token(wf, "carol", 3)
        approved = await wf.client.post("/connections", json={"monthlyUsd": 7.25}, headers=bearer(token))
        assert approved.status_code == 200, approved.text
        assert usd(approved.json()["limits"]["monthlyUsd"]) == Decimal("7.25")
        read = await wf.client.get("/connections", headers=bearer(token))
        assert read.status_code == 200, read.text
        assert read.json() == approved.json()
        assert usd((await status_of(wf, "carol"))["remainingUsd"]) == Decimal("7.25")


async def test_a_token_without_a_suggested_cap_approves_with_the_apps_default_cap(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = await session_token(wf, "carol")
        approved = await wf.client.post("/connections", headers=bearer(token))
        assert approved.status_code == 200, approved.text
        assert usd(approved.json()["limits"]["monthlyUsd"]) == Decimal(10)


async def test_a_bad_cap_in_the_approval_body_is_refused_and_connects_nobody(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = await session_token(wf, "carol")
        for cap in (-5, "5", None, 2_000_000):
            response = await wf.client.post("/connections", json={"monthlyUsd": cap}, headers=bearer(token))
            assert_error(response, 400, "invalid_request", "monthlyUsd")
        assert (await status_of(wf, "carol"))["connected"] is False


async def test_the_browser_revokes_its_connection_and_the_next_completion_is_not_connected(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = await session_token(wf, "carol", 3)
        assert (await wf.client.post("/connections", headers=bearer(token))).status_code == 200
        assert (await complete(wf, "carol")).status_code == 200
        revoked = await wf.client.delete("/connections", headers=bearer(token))
        assert revoked.status_code == 204
        assert revoked.content == b""
        status = await status_of(wf, "carol")
        assert status["connected"] is False
        assert status["state"] == "revoked"
        assert status["remainingUsd"] == 0
        # Revoked is final for test-mode auto-approval too: the next completion does not reconnect.
        assert_error(await complete(wf, "carol"), 402, "not_connected")
        assert_error(await complete(wf, "carol"), 402, "not_connected")


async def test_the_app_disconnects_its_user_with_the_secret_key(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert (await complete(wf, "dave")).status_code == 200
        response = await wf.client.delete("/connections/dave", headers=wf.auth())
        assert response.status_code == 204
        assert (await status_of(wf, "dave"))["connected"] is False
        assert_error(await complete(wf, "dave"), 402, "not_connected")


async def test_disconnecting_reaches_a_user_id_with_a_slash_and_a_space(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert (await complete(wf, "org/7 dave")).status_code == 200
        assert (await complete(wf, "org")).status_code == 200
        response = await wf.client.delete("/connections/org%2F7%20dave", headers=wf.auth())
        assert response.status_code == 204
        assert (await status_of(wf, "org/7 dave"))["connected"] is False
        assert (await status_of(wf, "org"))["connected"] is True


async def test_disconnecting_an_unknown_user_is_a_harmless_no_op(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert (await wf.client.delete("/connections/ghost", headers=wf.auth())).status_code == 204
        assert (await status_of(wf, "ghost"))["state"] is None


async def test_a_revoked_user_can_be_approved_again_through_a_new_session(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert (await complete(wf, "erin")).status_code == 200
        assert (await wf.client.delete("/connections/erin", headers=wf.auth())).status_code == 204
        token = await session_token(wf, "erin", 2)
        approved = await wf.client.post("/connections", headers=bearer(token))
        assert approved.json()["connected"] is True
        assert usd(approved.json()["limits"]["monthlyUsd"]) == Decimal(2)
        assert (await complete(wf, "erin")).status_code == 200


# -- live mode


async def test_a_live_session_token_cannot_approve_and_reads_not_connected(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        live = wf.app.secret_keys["live"]
        token = await session_token(wf, "frank", 5, key=live)
        assert_error(await wf.client.post("/connections", headers=bearer(token)), 402, "not_connected")
        assert_error(
            await wf.client.post("/connections", json={"monthlyUsd": 1}, headers=bearer(token)), 402, "not_connected"
        )
        read = await wf.client.get("/connections", headers=bearer(token))
        assert read.status_code == 200
        assert read.json()["connected"] is False
        assert (await status_of(wf, "frank", key=live))["connected"] is False


async def test_a_live_completion_for_an_unknown_user_is_not_connected_and_not_retried(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        response = await complete(wf, "frank", key=wf.app.secret_keys["live"])
        assert_error(response, 402, "not_connected", None)
        assert row_counts(tmp_path / "wattfare.db") == {"ledger": 0, "holds": 0, "counters": 0, "connections": 0}


# -- test-mode auto-approval


async def test_the_first_test_completion_auto_approves_with_the_apps_default_cap(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert (await status_of(wf, "gina"))["connected"] is False
        response = await complete(wf, "gina")
        assert response.status_code == 200, response.text
        status = await status_of(wf, "gina")
        assert status["connected"] is True
        assert usd(status["limits"]["monthlyUsd"]) == Decimal(10)
        assert usd(status["spentUsd"]) == Decimal(response.headers["Wattfare-Cost-Usd"])


async def test_auto_approval_uses_the_cap_suggested_in_an_earlier_session(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await session_token(wf, "hank", 2.5)
        assert (await complete(wf, "hank")).status_code == 200
        assert usd((await status_of(wf, "hank"))["limits"]["monthlyUsd"]) == Decimal("2.5")


async def test_the_latest_suggested_cap_wins(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await session_token(wf, "hank", 2.5)
        await session_token(wf, "hank", 4)
        assert (await complete(wf, "hank")).status_code == 200
        assert usd((await status_of(wf, "hank"))["limits"]["monthlyUsd"]) == Decimal(4)


async def test_a_live_suggested_cap_does_not_shape_test_auto_approval(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        await session_token(wf, "ivy", 1, key=wf.app.secret_keys["live"])
        assert (await complete(wf, "ivy")).status_code == 200
        assert usd((await status_of(wf, "ivy"))["limits"]["monthlyUsd"]) == Decimal(10)


# -- test and live never mix


async def test_a_test_approved_user_is_not_connected_for_the_live_key(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        live = wf.app.secret_keys["live"]
        assert (await complete(wf, "jack")).status_code == 200
        token = await session_token(wf, "kate", 3)
        assert (await wf.client.post("/connections", headers=bearer(token))).status_code == 200
        for user in ("jack", "kate"):
            assert (await status_of(wf, user))["connected"] is True
            assert (await status_of(wf, user, key=live))["connected"] is False
            assert_error(await complete(wf, user, key=live), 402, "not_connected")


async def test_a_live_disconnect_does_not_touch_the_test_connection(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        assert (await complete(wf, "jack")).status_code == 200
        live = wf.app.secret_keys["live"]
        assert (await wf.client.delete("/connections/jack", headers=wf.auth(live))).status_code == 204
        assert (await status_of(wf, "jack"))["connected"] is True
        assert (await complete(wf, "jack")).status_code == 200

"""One-time grants through the proxy, on SQLite and PostgreSQL: the request count and the dollar cap are exact.

Each grant is used as an app's server would: its secret key and the token in `Wattfare-Grant`, no end user. The
books are read straight from the database (`tests.support.ledger`), so a request the proxy answered but did
not count, or counted but did not charge, shows up there.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.api.envelope import assert_error
from tests.support import wattfare_server
from tests.support.ledger import Ledger
from tests.support.wattfare_server import InProcess, database_url_for, in_process, provision_async, served
from wattfare.metering import usd_to_nanos
from wattfare.server.access.keys import new_id
from wattfare.server.access.passwords import hash_password
from wattfare.server.billing.grants import mint_grant

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("each_store")]

MODEL = "openai/gpt-4o-mini"
SMALL = "openai/text-embedding-3-small"


def books(tmp_path: Path) -> Ledger:
    return Ledger(wattfare_server.database_override or database_url_for(tmp_path / "wattfare.db"))


async def mint(wf: InProcess, **body: Any) -> dict[str, Any]:
    response = await wf.client.post("/grants", json=body, headers=wf.auth(user=None))
    assert response.status_code == 201, response.text
    return response.json()


def with_grant(wf: InProcess, token: str, key: str | None = None) -> dict[str, str]:
    return wf.auth(key=key, user=None) | {"Wattfare-Grant": token}


async def chat(wf: InProcess, token: str, content: str = "hi", key: str | None = None, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": content}]} | body
    return await wf.client.post("/chat/completions", json=payload, headers=with_grant(wf, token, key))


async def status(wf: InProcess, token: str) -> dict[str, Any]:
    response = await wf.client.get("/grants/current", headers=with_grant(wf, token))
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_grant_of_three_serves_three_requests_then_grant_invalid(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        grant = await mint(wf, requests=3)
        token = grant["grantToken"]
        assert token.startswith("wfg_")
        assert grant["grantId"].startswith("gr_")
        assert grant["maxUsd"] is None

        served = [await chat(wf, token) for _ in range(3)]
        fourth = await chat(wf, token)

        assert [r.status_code for r in served] == [200, 200, 200]
        error = assert_error(fourth, 402, "grant_invalid")
        assert "used up" in error["message"]
        assert fourth.headers["x-should-retry"] == "false"
        now = await status(wf, token)
        assert (now["state"], now["requestsUsed"], now["requestsLeft"]) == ("used_up", 3, 0)
        entries = books(tmp_path).entries(f"grant:{grant['grantId']}")
        assert [e.kind for e in entries] == ["charge"] * 3
        # The usage report shows the grant's spend as one row of its own, named by the grant.
        usage = (await wf.client.get("/usage", headers=wf.auth(user=None))).json()["data"]
        assert [row["appUserId"] for row in usage] == [f"grant:{grant['grantId']}"]
        assert usage[0]["requests"] == 3


async def test_embeddings_count_against_the_same_grant(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = (await mint(wf, requests=2))["grantToken"]
        embedded = await wf.client.post(
            "/embeddings", json={"model": SMALL, "input": "hello"}, headers=with_grant(wf, token)
        )
        assert embedded.status_code == 200, embedded.text
        assert (await chat(wf, token)).status_code == 200

        refused = await wf.client.post(
            "/embeddings", json={"model": SMALL, "input": "hello"}, headers=with_grant(wf, token)
        )
        assert_error(refused, 402, "grant_invalid")
        assert sorted(e.endpoint for e in books(tmp_path).entries(app_user_prefix="grant:")) == [
            "chat.completions",
            "embeddings",
        ]


async def test_a_request_that_reached_no_model_is_given_back_and_a_refused_one_never_counts(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = (await mint(wf, requests=1))["grantToken"]

        upstream_failed = await chat(wf, token, "hi [sandbox:upstream_error]")
        unknown_model = await chat(wf, token, model="openai/no-such-model")
        bad_body = await chat(wf, token, max_tokens="many")

        assert_error(upstream_failed, 502, "upstream")
        assert unknown_model.status_code == 404
        assert bad_body.status_code == 400
        assert (await status(wf, token))["requestsUsed"] == 0
        assert (await chat(wf, token)).status_code == 200  # the one request is still there
        assert_error(await chat(wf, token), 402, "grant_invalid")
        kinds = sorted(e.kind for e in books(tmp_path).entries(app_user_prefix="grant:"))
        assert kinds == ["charge", "released"]


async def test_a_hundred_concurrent_requests_on_a_grant_of_five_serve_exactly_five(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        grant = await mint(wf, requests=5)

        answers = await asyncio.gather(*(chat(wf, grant["grantToken"]) for _ in range(100)))

        outcomes = Counter(r.status_code if r.status_code == 200 else r.json()["error"]["code"] for r in answers)
        assert outcomes == {200: 5, "grant_invalid": 95}
        assert (await status(wf, grant["grantToken"]))["requestsUsed"] == 5
        ledger = books(tmp_path)
        assert len(ledger.entries(f"grant:{grant['grantId']}")) == 5
        ledger.assert_balanced()


async def test_a_hundred_concurrent_requests_never_spend_past_the_grants_dollar_cap(tmp_path: Path) -> None:
    cap = "0.002"  # about seven long answers of gpt-4o-mini
    async with in_process(tmp_path) as wf:
        grant = await mint(wf, requests=1000, maxUsd=cap)
        token = grant["grantToken"]

        async def long_answer(i: int) -> httpx.Response:
            stream = i % 2 == 0
            return await chat(wf, token, f"tell me everything {i} [sandbox:long]", max_tokens=500, stream=stream)

        answers = await asyncio.gather(*(long_answer(i) for i in range(100)))

        codes = Counter(r.status_code if r.status_code == 200 else r.json()["error"]["code"] for r in answers)
        assert set(codes) <= {200, "grant_invalid", "budget_busy"}, codes
        assert codes[200] >= 3, codes
        assert codes["grant_invalid"] >= 1, codes
        ledger = books(tmp_path)
        ledger.wait_until_nothing_is_held()
        [account] = ledger.assert_balanced(app_user_prefix="grant:")
        assert account.spent == account.ledger_total <= usd_to_nanos(cap)
        after = await status(wf, token)
        assert after["requestsUsed"] == account.ledger_entries == codes[200]


async def test_a_stream_is_cut_to_what_the_dollar_cap_still_allows(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = (await mint(wf, requests=5, maxUsd="0.0001"))["grantToken"]  # about 160 output tokens

        answer = await chat(wf, token, "tell me everything [sandbox:long]", stream=True)

        assert answer.status_code == 200
        assert '"finish_reason":"length"' in answer.text.replace(" ", "")
        [account] = books(tmp_path).assert_balanced(app_user_prefix="grant:")
        assert 0 < account.spent <= usd_to_nanos("0.0001")


async def test_no_other_app_and_no_other_mode_can_use_a_grant(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = (await mint(wf, requests=3))["grantToken"]
        url = wattfare_server.database_override or database_url_for(tmp_path / "wattfare.db")
        other = await provision_async(url, name="Another app")

        by_other_app = await chat(wf, token, key=other.secret_keys["test"])
        by_live_key = await chat(wf, token, key=wf.app.secret_keys["live"])
        read_by_other = await wf.client.get("/grants/current", headers=with_grant(wf, token, other.secret_keys["test"]))

        assert_error(by_other_app, 402, "grant_invalid")
        assert_error(by_live_key, 402, "grant_invalid")
        assert_error(read_by_other, 402, "grant_invalid")
        assert (await status(wf, token))["requestsUsed"] == 0


async def test_forged_and_malformed_grant_tokens_are_refused_and_move_no_money(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        token = (await mint(wf, requests=3))["grantToken"]
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        forged = ["wfg_" + secrets.token_urlsafe(32), flipped, "not-a-grant", "wfg_" + "x" * 500, "wfg_"]

        for candidate in forged:
            assert_error(await chat(wf, candidate), 402, "grant_invalid")
        assert books(tmp_path).totals().ledger_rows == 0
        assert (await status(wf, token))["requestsUsed"] == 0


async def test_a_grant_and_an_end_user_together_and_grant_user_ids_are_refused(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        grant = await mint(wf, requests=3)
        both = wf.auth(user="alice") | {"Wattfare-Grant": grant["grantToken"]}
        payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}

        refused_both = await wf.client.post("/chat/completions", json=payload, headers=both)
        # The grant's own connection cannot be reached by naming its app user id instead of its token.
        posing = await wf.client.post(
            "/chat/completions", json=payload, headers=wf.auth(user=f"grant:{grant['grantId']}")
        )
        posing_in_body = await wf.client.post(
            "/chat/completions", json=payload | {"user": f"grant:{grant['grantId']}"}, headers=wf.auth(user=None)
        )
        session = await wf.client.post("/sessions", json={"appUserId": "grant:x"}, headers=wf.auth(user=None))

        assert_error(refused_both, 400, "invalid_request", "Wattfare-Grant")
        assert_error(posing, 400, "invalid_request", "user")
        assert_error(posing_in_body, 400, "invalid_request", "user")
        assert_error(session, 400, "invalid_request", "appUserId")
        assert (await status(wf, grant["grantToken"]))["requestsUsed"] == 0


async def test_an_expired_grant_is_refused(tmp_path: Path) -> None:
    now = [datetime.now(UTC)]
    url = wattfare_server.database_override or database_url_for(tmp_path / "wattfare.db")
    async with served(url, lambda: now[0]) as server, client_of(server.asgi) as client:
        secret = server.app.secret_keys["test"]
        auth = {"Authorization": f"Bearer {secret}"}
        minted = await client.post("/grants", json={"requests": 3, "expiresInSeconds": 60}, headers=auth)
        token = minted.json()["grantToken"]
        chat_body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        headers = auth | {"Wattfare-Grant": token}
        assert (await client.post("/chat/completions", json=chat_body, headers=headers)).status_code == 200

        now[0] += timedelta(seconds=61)

        expired = await client.post("/chat/completions", json=chat_body, headers=headers)
        assert "expired" in assert_error(expired, 402, "grant_invalid")["message"]
        assert (await client.get("/grants/current", headers=headers)).json()["state"] == "expired"


@asynccontextmanager
async def client_of(asgi: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi), base_url="http://wattfare.test/api/v1"
    ) as client:
        yield client


async def test_a_live_grant_is_paid_from_the_members_credits_and_revoking_it_stops_the_next_request(
    tmp_path: Path,
) -> None:
    async with in_process(tmp_path) as wf:
        services = wf_services(wf)
        store, now = services.store, datetime.now(UTC)
        member = await store.create_member(
            new_id("mem"), "gia@example.com", await hash_password("a long password"), now
        )
        assert member is not None
        await store.grant_credits(member.id, usd_to_nanos("1"), "test", now)
        minted = await mint_grant(
            store,
            app_id=wf.app.app.id,
            mode="live",
            member_id=member.id,
            requests=2,
            max_amount=None,
            lifetime=timedelta(hours=1),
            now=now,
        )
        live = wf.app.secret_keys["live"]

        served_once = await chat(wf, minted.token, key=live)
        assert served_once.status_code == 200, served_once.text
        balance = await store.credit_balance(member.id)
        assert balance.spent == books(tmp_path).entries(minted.grant.app_user_id)[0].amount > 0

        revoked = await store.revoke_member_grant(member.id, minted.grant.id, datetime.now(UTC))
        assert revoked is not None
        after = await chat(wf, minted.token, key=live)
        assert "revoked" in assert_error(after, 402, "grant_invalid")["message"]
        assert (await store.credit_balance(member.id)).spent == balance.spent


def wf_services(wf: InProcess) -> Any:
    """The running server's services behind an in-process client."""
    transport: Any = wf.client._transport  # pyright: ignore[reportPrivateUsage]
    return transport.app.state.services


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "requests"),
        ({"requests": 0}, "requests"),
        ({"requests": 1001}, "requests"),
        ({"requests": "3"}, "requests"),
        ({"requests": True}, "requests"),
        ({"requests": 3, "maxUsd": 0}, "maxUsd"),
        ({"requests": 3, "maxUsd": "free"}, "maxUsd"),
        ({"requests": 3, "expiresInSeconds": 59}, "expiresInSeconds"),
        ({"requests": 3, "expiresInSeconds": 86_401}, "expiresInSeconds"),
    ],
)
async def test_minting_refuses_bad_grants(tmp_path: Path, body: dict[str, Any], param: str) -> None:
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/grants", json=body, headers=wf.auth(user=None))
        assert_error(response, 400, "invalid_request", param)


async def test_only_test_keys_mint_grants_and_a_page_only_from_its_own_origin(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf:
        live = await wf.client.post("/grants", json={"requests": 3}, headers=wf.auth(wf.app.secret_keys["live"], None))
        assert "popup" in assert_error(live, 400, "invalid_request")["message"]

        publishable = wf.app.publishable_keys["test"]
        page = {"Wattfare-Publishable-Key": publishable}
        stranger = await wf.client.post(
            "/grants", json={"requests": 3}, headers=page | {"Origin": "https://evil.example"}
        )
        assert stranger.status_code == 403
        await wf_services(wf).store.set_app_origins(wf.app.app.id, ["https://tool.example"])
        from_page = await wf.client.post(
            "/grants", json={"requests": 3}, headers=page | {"Origin": "https://tool.example"}
        )
        assert from_page.status_code == 201, from_page.text
        assert from_page.headers["access-control-allow-origin"] == "https://tool.example"
        assert (await chat(wf, from_page.json()["grantToken"])).status_code == 200

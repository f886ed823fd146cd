"""One-time grants on both twins against the fake server: the header, minting, status, refusals, no retries."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from wattfare import (
    BadRequestError,
    CreatedGrant,
    GrantInvalidError,
    GrantStatus,
    PaymentRequiredError,
    UsageError,
)
from wattfare._client import _core, _grants

pytestmark = pytest.mark.anyio

CHAT = "POST /api/v1/chat/completions"
EMBEDDINGS = "POST /api/v1/embeddings"
GRANTS = "POST /api/v1/grants"
CURRENT = "GET /api/v1/grants/current"
HI = [{"role": "user", "content": "hi"}]


async def test_a_grants_chat_names_the_grant_and_no_user(twin: Any) -> None:
    reply = await twin.call(twin.client().grant(twin.fake.grant).chat(model="m", messages=HI, seed=3))

    sent = twin.fake.last(CHAT)
    assert sent.headers["wattfare-grant"] == twin.fake.grant
    assert "wattfare-user" not in sent.headers
    assert sent.headers["authorization"] == f"Bearer {twin.fake.secret}"
    assert json.loads(sent.content) == {"model": "m", "messages": HI, "seed": 3}
    assert reply.choices[0].message.content == "Hello!"
    assert reply.wattfare.cost_usd == Decimal("0.0000072")


async def test_a_grants_stream_names_the_grant_and_no_user(twin: Any) -> None:
    texts = await twin.texts(twin.client().grant(twin.fake.grant).stream(model="m", messages=HI))

    sent = twin.fake.last(CHAT)
    assert (sent.headers["wattfare-grant"], "wattfare-user" in sent.headers) == (twin.fake.grant, False)
    assert sent.headers["accept"] == "text/event-stream"
    assert json.loads(sent.content)["stream_options"] == {"include_usage": True}
    assert texts == ["Hel", "lo"]


async def test_a_grants_embeddings_name_the_grant_and_no_user(twin: Any) -> None:
    result = await twin.call(twin.client().grant(twin.fake.grant).embed(model="e", input=["a", "b"], dimensions=2))

    sent = twin.fake.last(EMBEDDINGS)
    assert (sent.headers["wattfare-grant"], "wattfare-user" in sent.headers) == (twin.fake.grant, False)
    assert json.loads(sent.content) == {"model": "e", "input": ["a", "b"], "dimensions": 2}
    assert len(result.vectors()) == 2


async def test_a_users_requests_still_name_no_grant(twin: Any) -> None:
    await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert "wattfare-grant" not in twin.fake.last(CHAT).headers


async def test_a_spent_grant_raises_grant_invalid_and_is_not_retried(twin: Any) -> None:
    # Even told to retry (a proxy's header), a 402 is final: a spent grant does not heal by waiting.
    refusal = twin.fake.error(402, "grant_invalid", "This grant is used up.", headers={"x-should-retry": "true"})
    twin.fake.script(CHAT, refusal, refusal)

    with pytest.raises(GrantInvalidError) as info:
        await twin.call(twin.client(max_retries=5).grant(twin.fake.grant).chat(model="m", messages=HI))

    assert isinstance(info.value, PaymentRequiredError)
    assert (info.value.status_code, info.value.code, info.value.message) == (
        402,
        "grant_invalid",
        "This grant is used up.",
    )
    assert info.value.request_id == "req_err"
    assert twin.fake.calls(CHAT) == 1
    assert twin.sleeps == []


async def test_an_unknown_grant_is_refused_on_embeddings_too(twin: Any) -> None:
    with pytest.raises(GrantInvalidError):
        await twin.call(twin.client().grant("wfg_forged").embed(model="e", input="x"))

    assert twin.fake.calls(EMBEDDINGS) == 1


async def test_a_grant_cut_off_mid_stream_raises_grant_invalid_after_the_text_before_it(twin: Any) -> None:
    f = twin.fake
    f.script(CHAT, f.stream(f.sse(f.chunk("Hel"), f.chunk("lo"), f.envelope("grant_invalid", "Revoked mid-stream."))))

    texts, error = await twin.texts_until_error(twin.client().grant(f.grant).stream(model="m", messages=HI))

    assert texts == ["Hel", "lo"]
    assert isinstance(error, GrantInvalidError)
    assert (error.status_code, error.code, error.request_id) == (402, "grant_invalid", "req_stream")


async def test_a_grant_refused_before_its_stream_starts_raises_on_entering(twin: Any) -> None:
    twin.fake.script(CHAT, twin.fake.error(402, "grant_invalid"))

    with pytest.raises(GrantInvalidError):
        await twin.enter(twin.client().grant(twin.fake.grant).stream(model="m", messages=HI))
    assert twin.fake.calls(CHAT) == 1


async def test_status_reads_the_grant_with_money_as_decimals_and_times_in_utc(twin: Any) -> None:
    status = await twin.call(twin.client().grant(twin.fake.grant).status())

    sent = twin.fake.last(CURRENT)
    assert (sent.headers["wattfare-grant"], "wattfare-user" in sent.headers) == (twin.fake.grant, False)
    assert isinstance(status, GrantStatus)
    assert (status.grant_id, status.state) == ("gr_1", "active")
    assert (status.requests_allowed, status.requests_used, status.requests_left) == (3, 1, 2)
    assert (status.max_usd, status.spent_usd, status.reserved_usd) == (Decimal("0.50"), Decimal("0.0000072"), 0)
    assert status.expires_at == datetime.fromtimestamp(1780003600, UTC)


async def test_status_of_an_uncapped_grant_has_no_max_usd(twin: Any) -> None:
    body = {
        "grantId": "gr_2",
        "state": "used_up",
        "requestsAllowed": 2,
        "requestsUsed": 2,
        "requestsLeft": 0,
        "maxUsd": None,
        "spentUsd": "0.01",
        "reservedUsd": "0",
        "expiresAt": 1780003600,
    }
    twin.fake.script(CURRENT, httpx.Response(200, json=body))

    status = await twin.call(twin.client().grant(twin.fake.grant).status())

    assert (status.state, status.requests_left, status.max_usd) == ("used_up", 0, None)


async def test_status_of_an_unknown_grant_raises_grant_invalid(twin: Any) -> None:
    with pytest.raises(GrantInvalidError):
        await twin.call(twin.client().grant("wfg_unknown").status())


async def test_create_test_grant_sends_the_wire_body_and_parses_the_grant(twin: Any) -> None:
    created = await twin.call(twin.client().create_test_grant(3, max_usd=Decimal("0.50"), expires_in_seconds=600))

    assert json.loads(twin.fake.last(GRANTS).content) == {"requests": 3, "maxUsd": "0.50", "expiresInSeconds": 600}
    assert isinstance(created, CreatedGrant)
    assert (created.grant_token, created.grant_id, created.requests) == (twin.fake.grant, "gr_1", 3)
    assert created.max_usd == Decimal("0.50")
    assert created.expires_at == datetime.fromtimestamp(1780003600, UTC)


async def test_a_test_grant_without_options_sends_only_its_request_count(twin: Any) -> None:
    created = await twin.call(twin.client().create_test_grant(2))

    assert json.loads(twin.fake.last(GRANTS).content) == {"requests": 2}
    assert created.max_usd is None


async def test_a_live_key_minting_a_grant_gets_the_servers_bad_request(twin: Any) -> None:
    twin.fake.script(GRANTS, twin.fake.error(400, "invalid_request", "a live grant needs the member's approval"))

    with pytest.raises(BadRequestError, match="approval"):
        await twin.call(twin.client().create_test_grant(1))


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"requests": 0}, "requests"),
        ({"requests": True}, "requests"),
        ({"requests": 2.0}, "requests"),
        ({"requests": 1, "max_usd": 0.5}, "float"),
        ({"requests": 1, "max_usd": "0"}, "more than 0"),
        ({"requests": 1, "max_usd": "-1"}, "max_usd"),
        ({"requests": 1, "max_usd": "lots"}, "max_usd"),
        ({"requests": 1, "expires_in_seconds": 0}, "expires_in_seconds"),
    ],
)
async def test_a_malformed_test_grant_is_a_usage_error_before_anything_is_sent(
    twin: Any, arguments: dict[str, Any], match: str
) -> None:
    wf = twin.client()
    options = dict(arguments)
    requests = options.pop("requests")
    with pytest.raises(UsageError, match=match):
        await twin.call(wf.create_test_grant(requests, **options))

    assert twin.fake.requests == []


@pytest.mark.parametrize("token", ["", "wfg_zoë", "wfg_a\nb", None, 42])
def test_a_grant_token_a_header_cannot_carry_is_a_usage_error_at_once(twin: Any, token: Any) -> None:
    with pytest.raises(UsageError, match="grant token"):
        twin.client().grant(token)


def test_the_grant_token_never_shows_in_a_repr(twin: Any) -> None:
    wf = twin.client()
    token = twin.fake.grant
    created = CreatedGrant.model_validate(
        {"grantToken": token, "grantId": "gr_1", "expiresAt": 1780003600, "requests": 1, "maxUsd": None}
    )

    for shown in (wf.grant(token), _grants.grant_status_request(token), created):
        assert token not in repr(shown)
    with pytest.raises(UsageError) as info:
        wf.grant(token + "\n")
    assert token not in str(info.value)


def test_a_request_is_charged_to_exactly_one_of_a_user_and_a_grant() -> None:
    with pytest.raises(UsageError, match="exactly one"):
        _core.chat_request("alice", "m", [], {}, stream=False, grant="wfg_x")
    with pytest.raises(UsageError, match="exactly one"):
        _core.chat_request(None, "m", [], {}, stream=False)
    with pytest.raises(UsageError, match="exactly one"):
        _core.embeddings_request(
            "alice", "m", "x", dimensions=None, encoding_format=None, extra_body=None, grant="wfg_x"
        )


def test_a_grant_spec_builds_a_request_with_the_grant_header_only() -> None:
    spec = _core.chat_request(None, "m", [], {}, stream=False, grant="wfg_x")
    config = _core.resolve_config(
        "sk_test_app1_0123456789abcdef", "http://wattfare.test", timeout=5, max_retries=0, environ={}
    )
    with httpx.Client() as http:
        request = _core.build_request(http, config, spec)

    assert request.headers["wattfare-grant"] == "wfg_x"
    assert "wattfare-user" not in request.headers
    assert (spec.app_user_id, spec.grant) == (None, "wfg_x")


def test_a_grant_refusal_pickles_with_its_data() -> None:
    exc = GrantInvalidError("used up", status_code=402, code="grant_invalid", request_id="req_1")

    copy = pickle.loads(pickle.dumps(exc))

    assert (type(copy), copy.code, copy.request_id, str(copy)) == (
        GrantInvalidError,
        "grant_invalid",
        "req_1",
        str(exc),
    )

"""Both twins against the fake server: request shapes, parsed results, errors, retries."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

import wattfare
from wattfare import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetBusyError,
    BudgetExceededError,
    FundingInvalidError,
    GrantInvalidError,
    NotConnectedError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
    UsageError,
)

pytestmark = pytest.mark.anyio

CHAT = "POST /api/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


async def test_create_session_sends_the_wire_body_and_parses_the_session(twin: Any) -> None:
    wf = twin.client()
    session = await twin.call(wf.create_session("alice", monthly_usd=Decimal("10.50")))

    sent = twin.fake.last("POST /api/v1/sessions")
    assert json.loads(sent.content) == {"appUserId": "alice", "requestLimit": {"monthlyUsd": 10.5}}
    assert sent.headers["authorization"] == f"Bearer {twin.fake.secret}"
    assert sent.headers["user-agent"] == f"wattfare-python/{wattfare.__version__}"
    assert session.token == "tok_alice"
    assert session.expires_at == datetime.fromtimestamp(1780000600, UTC)
    assert session.connect_url.endswith("/connect?session=tok")


async def test_status_of_a_connected_user_reads_money_as_decimals(twin: Any) -> None:
    status = await twin.call(twin.client().user("alice").status())

    assert twin.fake.last("GET /api/v1/status").url.params["appUserId"] == "alice"
    assert status.connected is True
    assert status.state == "active"
    assert status.app_user_id == "alice"
    assert status.limits.monthly_usd == Decimal(10)
    assert (status.spent_usd, status.remaining_usd) == (Decimal("1.25"), Decimal("8.5"))
    assert status.reserved_usd == Decimal("0.25")
    assert status.resets_at == datetime(2026, 12, 1, tzinfo=UTC)


async def test_status_of_an_unknown_user_is_not_connected_rather_than_an_error(twin: Any) -> None:
    status = await twin.call(twin.client().user("stranger").status())

    assert (status.connected, status.state, status.remaining_usd) == (False, None, None)


async def test_disconnect_deletes_the_users_connection(twin: Any) -> None:
    assert await twin.call(twin.client().user("a/b").disconnect()) is None

    assert twin.fake.requests[-1].method == "DELETE"
    assert twin.fake.requests[-1].url.raw_path == b"/api/v1/connections/a%2Fb"


async def test_models_lists_prices_as_decimals_and_keeps_extra_fields(twin: Any) -> None:
    models = await twin.call(twin.client().models())

    assert [m.id for m in models] == ["openai/gpt-4o-mini"]
    assert models[0].pricing.prompt == Decimal("0.00000015")
    assert models[0].pricing.completion == Decimal("0.0000006")
    assert models[0].pricing.model_extra == {"request": "0"}
    assert models[0].top_provider is not None
    assert models[0].top_provider.max_completion_tokens == 16384


async def test_usage_sends_the_period_and_parses_rows(twin: Any) -> None:
    report = await twin.call(twin.client().usage("alice", start=date(2026, 11, 1), end=date(2026, 11, 30)))

    params = twin.fake.last("GET /api/v1/usage").url.params
    assert dict(params) == {"appUserId": "alice", "from": "2026-11-01", "to": "2026-11-30"}
    assert (report.start, report.end) == (date(2026, 11, 1), date(2026, 11, 30))
    row = report.data[0]
    assert (row.app_user_id, row.requests, row.prompt_tokens, row.completion_tokens) == ("alice", 3, 30, 9)
    assert row.cost_usd == Decimal("0.0000099")
    assert row.endpoint == "chat.completions"


async def test_usage_of_the_whole_app_follows_every_page(twin: Any) -> None:
    report = await twin.call(twin.client().usage(start=date(2026, 11, 1)))

    asked = [dict(r.url.params) for r in twin.fake.requests if r.url.path.endswith("/usage")]
    assert asked == [{"from": "2026-11-01", "limit": "1000"}, {"from": "2026-11-01", "limit": "1000", "after": "alice"}]
    assert [row.app_user_id for row in report.data] == ["alice", "bob"]
    assert (report.has_more, report.next_after) == (False, None)


async def test_usage_with_a_limit_or_cursor_returns_that_page(twin: Any) -> None:
    first = await twin.call(twin.client().usage(limit=1))
    later = await twin.call(twin.client().usage(after=first.next_after))

    assert ([row.app_user_id for row in first.data], first.has_more, first.next_after) == (["alice"], True, "alice")
    assert ([row.app_user_id for row in later.data], later.has_more) == (["bob"], False)
    asked = [dict(r.url.params) for r in twin.fake.requests if r.url.path.endswith("/usage")]
    assert asked == [{"limit": "1"}, {"after": "alice"}]


async def test_chat_names_the_user_in_a_header_and_returns_wattfare_info(twin: Any) -> None:
    reply = await twin.call(twin.client().user("alice").chat(model="openai/gpt-4o-mini", messages=HI, seed=3))

    sent = twin.fake.last(CHAT)
    assert sent.headers["wattfare-user"] == "alice"
    assert json.loads(sent.content) == {"model": "openai/gpt-4o-mini", "messages": HI, "seed": 3}
    assert reply.choices[0].message.content == "Hello!"
    assert reply.usage is not None
    assert reply.usage.total_tokens == 11
    assert reply.wattfare.cost_usd == Decimal("0.0000072")
    assert reply.wattfare.remaining_usd == Decimal("9.9999928")
    assert reply.wattfare.request_id == "req_1"


async def test_status_from_a_server_that_reports_no_reserved_amount_still_parses(twin: Any) -> None:
    older = {
        "connected": True,
        "state": "active",
        "appUserId": "alice",
        "limits": {"monthlyUsd": 10},
        "spentUsd": 1.25,
        "remainingUsd": 8.75,
        "resetsAt": "2026-12-01T00:00:00Z",
    }
    twin.fake.script("GET /api/v1/status", httpx.Response(200, json=older))

    status = await twin.call(twin.client().user("alice").status())

    assert status.reserved_usd is None
    assert status.remaining_usd == Decimal("8.75")


def clamped_completion(*, headers: dict[str, str], wattfare_block: dict[str, Any]) -> httpx.Response:
    """A completion cut at its `max_tokens` (finish reason `length`), with the new server's `wattfare` block."""
    body = {
        "id": "chatcmpl-c",
        "object": "chat.completion",
        "created": 1780000000,
        "model": "openai/gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hel"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2000, "total_tokens": 2009},
        "wattfare": wattfare_block,
    }
    return httpx.Response(200, json=body, headers={"Wattfare-Request-Id": "req_c", **headers})


async def test_a_clamped_answer_says_so_with_the_max_tokens_sent(twin: Any) -> None:
    block = {"requestId": "req_c", "costUsd": 0.03, "remainingUsd": 0.0001, "maxTokens": 2000, "clamped": True}
    twin.fake.script(
        CHAT,
        clamped_completion(
            headers={"Wattfare-Max-Tokens": "2000", "Wattfare-Clamped": "true", "Wattfare-Cost-Usd": "0.03"},
            wattfare_block=block,
        ),
    )

    reply = await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert (reply.wattfare.max_tokens, reply.wattfare.clamped) == (2000, True)
    assert reply.wattfare.cost_usd == Decimal("0.03")
    assert reply.choices[0].finish_reason == "length"


async def test_without_clamping_headers_the_bodys_wattfare_block_says_it(twin: Any) -> None:
    block = {"requestId": "req_c", "costUsd": 0.03, "remainingUsd": 0.0001, "maxTokens": 1500, "clamped": True}
    twin.fake.script(CHAT, clamped_completion(headers={}, wattfare_block=block))

    reply = await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert (reply.wattfare.max_tokens, reply.wattfare.clamped) == (1500, True)
    assert (reply.wattfare.cost_usd, reply.wattfare.remaining_usd) == (Decimal("0.03"), Decimal("0.0001"))


async def test_an_answer_wattfare_sent_no_max_tokens_for_is_not_clamped(twin: Any) -> None:
    block = {"requestId": "req_c", "costUsd": 0.03, "remainingUsd": 1, "maxTokens": None, "clamped": False}
    twin.fake.script(CHAT, clamped_completion(headers={"Wattfare-Clamped": "false"}, wattfare_block=block))

    reply = await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert (reply.wattfare.max_tokens, reply.wattfare.clamped) == (None, False)


async def test_an_older_server_that_says_nothing_of_clamping_leaves_it_unknown(twin: Any) -> None:
    reply = await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert (reply.wattfare.max_tokens, reply.wattfare.clamped) == (None, None)


async def test_a_model_handle_is_bound_to_its_user_and_model(twin: Any) -> None:
    handle = twin.client().user("bob").model("anthropic/claude-sonnet-4")
    await twin.call(handle.chat(HI, temperature=0))

    sent = twin.fake.last(CHAT)
    assert sent.headers["wattfare-user"] == "bob"
    assert json.loads(sent.content) == {"model": "anthropic/claude-sonnet-4", "messages": HI, "temperature": 0}
    assert (handle.model_id, handle.user.app_user_id) == ("anthropic/claude-sonnet-4", "bob")


ERRORS = [
    (401, "auth", AuthenticationError),
    (402, "not_connected", NotConnectedError),
    (402, "budget_exceeded", BudgetExceededError),
    (402, "funding_invalid", FundingInvalidError),
    (402, "grant_invalid", GrantInvalidError),
    (400, "invalid_request", BadRequestError),
    (413, "invalid_request", BadRequestError),
    (422, "invalid_request", BadRequestError),
    (404, "model_not_found", NotFoundError),
    (429, "rate_limited", RateLimitError),
    (429, "budget_busy", BudgetBusyError),
    (502, "upstream", UpstreamError),
    (504, "upstream", UpstreamError),
]


@pytest.mark.parametrize(("status", "code", "cls"), ERRORS)
async def test_every_error_response_raises_its_typed_exception(
    twin: Any, status: int, code: str, cls: type[APIStatusError]
) -> None:
    twin.fake.script(CHAT, *[twin.fake.error(status, code, "Spelled out.", param="model")] * 3)

    with pytest.raises(cls) as info:
        await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert (info.value.status_code, info.value.code, info.value.message) == (status, code, "Spelled out.")
    assert (info.value.param, info.value.request_id) == ("model", "req_err")


@pytest.mark.parametrize("code", ["not_connected", "budget_exceeded", "funding_invalid", "grant_invalid"])
async def test_a_402_is_never_retried(twin: Any, code: str) -> None:
    twin.fake.script(CHAT, twin.fake.error(402, code), twin.fake.error(402, code))

    with pytest.raises(wattfare.PaymentRequiredError):
        await twin.call(twin.client(max_retries=5).user("alice").chat(model="m", messages=HI))

    assert twin.fake.calls(CHAT) == 1
    assert twin.sleeps == []


async def test_a_402_is_not_retried_even_when_the_server_forgets_x_should_retry(twin: Any) -> None:
    bare = httpx.Response(402, json=twin.fake.envelope("budget_exceeded"))
    twin.fake.script(CHAT, bare, bare)

    with pytest.raises(BudgetExceededError):
        await twin.call(twin.client().user("alice").chat(model="m", messages=HI))
    assert twin.fake.calls(CHAT) == 1


async def test_a_429_is_retried_after_the_servers_retry_after(twin: Any) -> None:
    twin.fake.script(CHAT, twin.fake.error(429, "rate_limited", headers={"Retry-After": "3"}))

    reply = await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert reply.choices[0].message.content == "Hello!"
    assert twin.fake.calls(CHAT) == 2
    assert twin.sleeps == [3.0]


def busy(retry_after: str = "1") -> httpx.Response:
    return httpx.Response(
        429,
        json={"error": {"code": "budget_busy", "message": "Busy.", "type": "rate_limit_error", "param": None}},
        headers={"Retry-After": retry_after, "Wattfare-Request-Id": "req_busy"},
    )


async def test_a_busy_budget_is_retried_after_its_retry_after_until_it_clears(twin: Any) -> None:
    twin.fake.script(CHAT, busy(), busy())

    reply = await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert reply.choices[0].message.content == "Hello!"
    assert twin.fake.calls(CHAT) == 3
    assert twin.sleeps == [1.0, 1.0]


async def test_a_budget_that_stays_busy_is_raised_as_busy_once_retries_run_out(twin: Any) -> None:
    twin.fake.script(CHAT, busy(), busy(), busy(), busy())

    with pytest.raises(BudgetBusyError) as info:
        await twin.call(twin.client(max_retries=2).user("alice").chat(model="m", messages=HI))

    assert not isinstance(info.value, BudgetExceededError)
    assert (info.value.retry_after, info.value.request_id) == (1.0, "req_busy")
    assert twin.fake.calls(CHAT) == 3


async def test_a_busy_budget_asking_for_a_very_long_wait_is_raised_at_once(twin: Any) -> None:
    twin.fake.script(CHAT, busy("600"))

    with pytest.raises(BudgetBusyError):
        await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert twin.fake.calls(CHAT) == 1
    assert twin.sleeps == []


async def test_busy_retries_retry_a_busy_budget_when_max_retries_retry_nothing(twin: Any) -> None:
    twin.fake.script(CHAT, busy(), busy(), twin.fake.error(503, "unavailable"))

    with pytest.raises(APIStatusError) as info:
        await twin.call(twin.client(max_retries=0, busy_retries=5).user("alice").chat(model="m", messages=HI))

    assert info.value.status_code == 503  # the busy refusals were retried, the outage was not
    assert twin.fake.calls(CHAT) == 3
    assert twin.sleeps == [1.0, 1.0]


async def test_busy_retries_bound_the_retries_of_a_busy_budget(twin: Any) -> None:
    twin.fake.script(CHAT, busy(), busy(), busy())

    with pytest.raises(BudgetBusyError):
        await twin.call(twin.client(max_retries=0, busy_retries=1).user("alice").chat(model="m", messages=HI))

    assert twin.fake.calls(CHAT) == 2


async def test_a_503_is_retried_with_backoff_then_raised_when_retries_run_out(twin: Any) -> None:
    unavailable = twin.fake.error(503, "unavailable")
    twin.fake.script("GET /api/v1/models", unavailable, unavailable, unavailable)

    with pytest.raises(APIStatusError) as info:
        await twin.call(twin.client(max_retries=2).models())

    assert info.value.status_code == 503
    assert twin.fake.calls("GET /api/v1/models") == 3
    assert twin.sleeps == [0.5, 1.0]


async def test_a_503_with_an_http_date_retry_after_waits_until_then(twin: Any) -> None:
    twin.fake.script(
        "GET /api/v1/models",
        twin.fake.error(503, "unavailable", headers={"Retry-After": "Thu, 26 Nov 2026 12:00:02 GMT"}),
    )

    await twin.call(twin.client().models())

    assert twin.sleeps == [2.0]


async def test_a_rate_limit_whose_retry_after_is_too_long_is_raised_with_it(twin: Any) -> None:
    twin.fake.script(CHAT, twin.fake.error(429, "rate_limited", headers={"Retry-After": "120"}))

    with pytest.raises(RateLimitError) as info:
        await twin.call(twin.client().user("alice").chat(model="m", messages=HI))

    assert info.value.retry_after == 120.0
    assert twin.fake.calls(CHAT) == 1


async def test_connection_errors_are_retried_then_wrapped_with_their_cause(twin: Any) -> None:
    refused = httpx.ConnectError("connection refused")
    twin.fake.script("GET /api/v1/status", refused, refused, refused)

    with pytest.raises(APIConnectionError) as info:
        await twin.call(twin.client().user("alice").status())

    assert not isinstance(info.value, APITimeoutError)
    assert info.value.__cause__ is refused
    assert "connection refused" in str(info.value)
    assert twin.fake.calls("GET /api/v1/status") == 3
    assert twin.sleeps == [0.5, 1.0]


async def test_a_connection_error_then_success_returns_the_success(twin: Any) -> None:
    twin.fake.script("GET /api/v1/status", httpx.ReadError("reset"))

    status = await twin.call(twin.client().user("alice").status())

    assert status.connected is True


async def test_timeouts_raise_api_timeout_error(twin: Any) -> None:
    twin.fake.script("GET /api/v1/status", httpx.ReadTimeout("slow"))

    with pytest.raises(APITimeoutError) as info:
        await twin.call(twin.client(max_retries=0).user("alice").status())

    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


async def test_a_success_body_that_does_not_match_the_wire_is_an_api_error(twin: Any) -> None:
    twin.fake.script(
        "GET /api/v1/status",
        httpx.Response(200, json={"connected": "maybe"}, headers={"Wattfare-Request-Id": "req_bad"}),
    )

    with pytest.raises(APIError) as info:
        await twin.call(twin.client().user("alice").status())

    assert type(info.value) is APIError
    assert info.value.request_id == "req_bad"
    assert "ConnectionStatus" in str(info.value)


async def test_stream_true_in_chat_params_is_a_usage_error_before_any_request(twin: Any) -> None:
    with pytest.raises(UsageError):
        await twin.call(twin.client().user("alice").chat(model="m", messages=HI, stream=True))
    assert twin.fake.requests == []


@pytest.mark.parametrize("user", ["", None])
async def test_an_empty_app_user_id_is_a_usage_error(twin: Any, user: Any) -> None:
    with pytest.raises(UsageError):
        twin.client().user(user)


async def test_the_env_supplies_the_key_and_base_url(twin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", "sk_live_from_env")
    monkeypatch.setenv("WATTFARE_BASE_URL", "http://env.wattfare.test")
    wf = twin.client(secret_key=None, base_url=None)

    await twin.call(wf.models())

    sent = twin.fake.requests[-1]
    assert sent.headers["authorization"] == "Bearer sk_live_from_env"
    assert str(sent.url) == "http://env.wattfare.test/api/v1/models"


async def test_a_missing_key_is_a_usage_error(twin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATTFARE_SECRET_KEY", raising=False)

    with pytest.raises(UsageError):
        twin.client(secret_key=None)


async def test_closing_the_client_leaves_a_callers_http_client_open(twin: Any) -> None:
    wf = twin.client()
    await twin.close(wf)

    assert not wf._http.is_closed
    await twin.call(wf.models())


async def test_closing_the_client_closes_its_own_pool(twin: Any) -> None:
    wf = twin.client(http_client=None)
    await twin.close(wf)

    assert wf._http.is_closed


def test_the_sync_client_is_a_context_manager_that_closes_itself() -> None:
    with wattfare.Wattfare("sk_test_x") as wf:
        pool = wf._http
    assert pool.is_closed


async def test_the_async_client_is_an_async_context_manager_that_closes_itself() -> None:
    async with wattfare.AsyncWattfare("sk_test_x") as wf:
        pool = wf._http
    assert pool.is_closed


async def test_a_client_of_the_wrong_kind_is_a_usage_error() -> None:
    async with httpx.AsyncClient() as async_http:
        with pytest.raises(UsageError):
            wattfare.Wattfare("sk_test_x", http_client=async_http)  # type: ignore[arg-type]
    with httpx.Client() as sync_http, pytest.raises(UsageError):
        wattfare.AsyncWattfare("sk_test_x", http_client=sync_http)  # type: ignore[arg-type]


def test_the_client_repr_never_shows_the_key() -> None:
    with wattfare.Wattfare("sk_test_topsecret") as wf:
        assert "topsecret" not in repr(wf)
        assert "topsecret" not in repr(wf.user("alice").model("m"))

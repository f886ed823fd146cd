"""The handler's pure parts, without a server: reading a LiteLLM call, stream chunks, error mapping, registration."""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_guardrail import is_guardrail_intervention

import wattfare
import wattfare_litellm
from wattfare import ChatCompletionChunk, Usage
from wattfare_litellm import (
    WattfareBudgetBusyError,
    WattfareBudgetExceededError,
    WattfareFundingInvalidError,
    WattfareLLM,
    WattfareNotConnectedError,
    WattfarePaymentRequiredError,
    WattfareUserRefusalError,
)
from wattfare_litellm import _error_mapping as error_mapping
from wattfare_litellm._call import read_call
from wattfare_litellm._chunks import ChunkTranslator
from wattfare_litellm._error_mapping import PER_USER_REFUSALS, litellm_error
from wattfare_litellm._response import usage_block

# ---------------------------------------------------------------- reading a call


class FakeLogging:
    """Stands in for LiteLLM's logging object, which records the call's `user`."""

    def __init__(self, user: str | None) -> None:
        self.model_call_details: dict[str, Any] = {"user": user}


def read(
    optional_params: dict[str, Any],
    *,
    user: str | None = "u1",
    headers: dict[str, Any] | None = None,
    stream: bool = False,
) -> Any:
    return read_call(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        optional_params=optional_params,
        logging_obj=FakeLogging(user),
        headers=headers,
        api_key="sk_test_1",
        api_base="http://wattfare.test",
        timeout=12.0,
        stream=stream,
    )


def test_the_end_user_is_litellms_user_param() -> None:
    assert read({}, user="u_from_litellm").app_user_id == "u_from_litellm"
    assert read({"user": "u_allowed_param"}, user=None).app_user_id == "u_allowed_param"


def test_the_wattfare_user_header_names_the_end_user_when_user_is_absent() -> None:
    assert read({}, user=None, headers={"Wattfare-User": "u_header"}).app_user_id == "u_header"


def test_a_call_without_any_end_user_is_a_bad_request() -> None:
    with pytest.raises(litellm.BadRequestError, match="pass user="):
        read({}, user=None, headers={"X-Other": "x"})


def test_openai_params_pass_through_and_litellm_controls_do_not() -> None:
    call = read(
        {
            "temperature": 0.2,
            "tools": [{"type": "function"}],
            "max_retries": 0,
            "stream_options": {"include_usage": True},
            "extra_body": {"seed": 7, "provider": {"order": ["a"]}},
        }
    )

    assert call.params == {"temperature": 0.2, "tools": [{"type": "function"}], "seed": 7, "provider": {"order": ["a"]}}
    assert call.client.max_retries == 0
    assert (call.client.secret_key, call.client.base_url, call.client.timeout) == (
        "sk_test_1",
        "http://wattfare.test",
        12.0,
    )


def test_a_router_calls_retries_become_the_sdks_retries_of_a_busy_budget() -> None:
    def busy_retries(litellm_params: object) -> int | None:
        return read_call(
            model="m",
            messages=[],
            optional_params={"max_retries": 0},
            logging_obj=FakeLogging("u1"),
            headers=None,
            api_key=None,
            api_base=None,
            timeout=None,
            stream=False,
            litellm_params=litellm_params,
        ).client.busy_retries

    # What litellm 1.110.2's Router records in each attempt's metadata (its num_retries as max_retries).
    assert busy_retries({"metadata": {"model_group": "smart", "attempted_retries": 0, "max_retries": 3}}) == 3
    assert busy_retries({"metadata": {"model_group": "smart", "max_retries": 0}}) == 0
    # Not a Router call, or nothing readable: the SDK's max_retries bound a busy budget too.
    assert busy_retries({"metadata": {"max_retries": 3}}) is None
    assert busy_retries({"metadata": {"model_group": "smart", "max_retries": "3"}}) is None
    assert busy_retries({"metadata": None}) is None
    assert busy_retries(None) is None


def test_stream_options_are_kept_for_a_stream() -> None:
    assert read({"stream": True, "stream_options": {"include_usage": True}}, stream=True).params == {
        "stream_options": {"include_usage": True}
    }


def test_connection_settings_in_the_params_are_read_and_never_sent() -> None:
    call = read({"temperature": 0.2, "timeout": 5, "api_key": "sk_test_other", "extra_headers": {"X": "y"}})

    assert call.params == {"temperature": 0.2}


@pytest.mark.parametrize("name", ["openai_api_key", "azure_ad_token", "api_token", "token", "provider"])
def test_params_that_are_not_chat_completions_params_are_refused_naming_extra_body(name: str) -> None:
    with pytest.raises(litellm.UnsupportedParamsError, match=name) as refused:
        read({"temperature": 0.2, name: "sk_test_elsewhere"})

    assert "extra_body" in str(refused.value)
    assert refused.value.status_code == 400


def test_drop_params_drops_what_is_not_a_chat_completions_param(monkeypatch: pytest.MonkeyPatch) -> None:
    optional = {"temperature": 0.2, "openai_api_key": "sk_test_elsewhere"}

    per_call = read_call(
        model="m",
        messages=[],
        optional_params=optional,
        logging_obj=FakeLogging("u1"),
        headers=None,
        api_key=None,
        api_base=None,
        timeout=None,
        stream=False,
        litellm_params={"drop_params": True},
    )
    monkeypatch.setattr(litellm, "drop_params", True)
    process_wide = read(optional)

    assert per_call.params == process_wide.params == {"temperature": 0.2}


@pytest.mark.parametrize("name", ["api_key", "api_base", "timeout", "organization"])
def test_connection_settings_in_extra_body_are_refused(name: str) -> None:
    with pytest.raises(litellm.BadRequestError, match=f"{name} in extra_body"):
        read({"extra_body": {name: "sk_test_elsewhere"}})


# ---------------------------------------------------------------- stream chunks


def chunk(data: dict[str, Any]) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({"id": "c1", "created": 1, "model": "m", **data})


def test_a_chunk_with_two_tool_calls_becomes_two_generic_chunks() -> None:
    translator = ChunkTranslator()
    delta = {
        "content": "ok",
        "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    }

    out = translator.translate(chunk({"choices": [{"index": 0, "delta": delta}]}))

    assert [c["text"] for c in out] == ["ok", ""]
    assert [c.get("tool_use") for c in out] == [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}, "index": 0},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}, "index": 1},
    ]
    assert not any(c["is_finished"] for c in out)


def test_role_only_and_usage_only_chunks_yield_nothing() -> None:
    translator = ChunkTranslator()

    assert translator.translate(chunk({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})) == []
    assert translator.translate(chunk({"choices": [], "usage": {"prompt_tokens": 1}})) == []


@dataclass(frozen=True)
class Outcome:
    """What a finished core stream knows, as `ChunkTranslator.final` reads it."""

    usage: Usage | None = None
    cost_usd: Decimal | None = None
    remaining_usd: Decimal | None = None
    request_id: str | None = None
    max_tokens: int | None = None
    clamped: bool | None = None


def test_the_finish_reason_waits_for_the_final_chunk_with_usage_and_cost() -> None:
    translator = ChunkTranslator()
    finishing = chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})

    assert translator.translate(finishing) == []
    usage = Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    final = translator.final(Outcome(usage=usage, cost_usd=Decimal("0.000123")))

    assert final["is_finished"] is True
    assert final["finish_reason"] == "tool_calls"
    assert final["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": 0.000123}


def test_a_stream_without_a_finish_reason_still_finishes() -> None:
    unknown = {"cost_usd": None, "remaining_usd": None, "request_id": None, "max_tokens": None, "clamped": None}
    assert ChunkTranslator().final(Outcome()) == {
        "text": "",
        "tool_use": None,
        "is_finished": True,
        "finish_reason": "stop",
        "usage": None,
        "index": 0,
        "provider_specific_fields": {"wattfare": unknown},
    }


def test_the_final_chunk_carries_wattfares_block_with_the_clamping() -> None:
    outcome = Outcome(
        cost_usd=Decimal("0.0100"), remaining_usd=Decimal(0), request_id="req_s", max_tokens=812, clamped=True
    )

    final = ChunkTranslator().final(outcome)

    assert final.get("provider_specific_fields") == {
        "wattfare": {
            "cost_usd": "0.0100",
            "remaining_usd": "0",
            "request_id": "req_s",
            "max_tokens": 812,
            "clamped": True,
        }
    }


def test_wattfares_charge_wins_over_the_upstreams_reported_cost() -> None:
    usage = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2, cost=Decimal("0.5"))

    assert usage_block(usage, Decimal("0.25")) == {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "cost": 0.25,
    }
    assert usage_block(usage, None)["cost"] == 0.5  # type: ignore[index]
    assert usage_block(None, None) is None


# ---------------------------------------------------------------- errors


def status(cls: type[wattfare.APIStatusError], status_code: int, code: str | None = None) -> wattfare.APIStatusError:
    return cls("it failed", status_code=status_code, code=code, body={"error": {"code": code, "message": "it failed"}})


MAPPING: list[tuple[wattfare.WattfareError, type[Exception], int]] = [
    (status(wattfare.NotConnectedError, 402, "not_connected"), WattfareNotConnectedError, 400),
    (status(wattfare.FundingInvalidError, 402, "funding_invalid"), WattfareFundingInvalidError, 400),
    (status(wattfare.PaymentRequiredError, 402), WattfarePaymentRequiredError, 400),
    (status(wattfare.BudgetBusyError, 429, "budget_busy"), WattfareBudgetBusyError, 400),
    (status(wattfare.RateLimitError, 429, "rate_limited"), litellm.RateLimitError, 429),
    (status(wattfare.AuthenticationError, 401, "auth"), litellm.AuthenticationError, 401),
    (status(wattfare.NotFoundError, 404, "model_not_found"), litellm.NotFoundError, 404),
    (status(wattfare.BadRequestError, 413, "invalid_request"), litellm.BadRequestError, 400),
    (status(wattfare.UpstreamError, 502, "upstream"), litellm.BadGatewayError, 502),
    (status(wattfare.UpstreamError, 504, "upstream"), litellm.Timeout, 408),
    (status(wattfare.APIStatusError, 500, "internal"), litellm.InternalServerError, 500),
    (status(wattfare.APIStatusError, 503, "unavailable"), litellm.ServiceUnavailableError, 503),
    (status(wattfare.APIStatusError, 403), litellm.PermissionDeniedError, 403),
    (status(wattfare.APIStatusError, 418), litellm.BadRequestError, 400),
    (wattfare.APITimeoutError("slow"), litellm.Timeout, 408),
    (wattfare.APIConnectionError("down"), litellm.APIConnectionError, 500),
    (wattfare.StreamError("cut"), litellm.APIConnectionError, 500),
    (wattfare.UsageError("bad argument"), litellm.BadRequestError, 400),
    (wattfare.APIError("unreadable"), litellm.APIError, 500),
]


@pytest.mark.parametrize(("error", "expected", "status_code"), MAPPING, ids=lambda v: getattr(v, "__name__", None))
def test_each_wattfare_error_maps_to_its_litellm_class(
    error: wattfare.WattfareError, expected: type[Exception], status_code: int
) -> None:
    mapped: Any = litellm_error(error, model="openai/gpt-4o-mini", app_user_id="u1")

    assert type(mapped) is expected
    # That narrowed `mapped` to `Exception`; every LiteLLM exception class sets these two.
    assert mapped.status_code == status_code  # pyright: ignore[reportAttributeAccessIssue]
    assert mapped.llm_provider == "wattfare"  # pyright: ignore[reportAttributeAccessIssue]


@pytest.mark.parametrize("code", sorted(PER_USER_REFUSALS))
def test_every_per_user_refusal_is_a_guardrail_intervention_for_the_router(code: str) -> None:
    error = status(wattfare.PaymentRequiredError, 402, code)

    mapped: Any = litellm_error(error, model="m", app_user_id="u1")

    assert isinstance(mapped, WattfareUserRefusalError)
    assert isinstance(mapped, litellm.BadRequestError)
    assert is_guardrail_intervention(mapped), "LiteLLM's Router never falls back from a guardrail's intervention"
    assert (mapped.code, mapped.status_code, mapped.wattfare_status_code) == (code, 400, 402)


def test_a_code_added_to_the_per_user_refusals_is_refused_like_them_whatever_its_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paused = status(wattfare.RateLimitError, 429, "budget_paused")
    assert isinstance(litellm_error(paused, model="m", app_user_id="u1"), litellm.RateLimitError)

    monkeypatch.setattr(error_mapping, "PER_USER_REFUSALS", error_mapping.PER_USER_REFUSALS | {"budget_paused"})
    mapped: Any = litellm_error(paused, model="m", app_user_id="u1")

    assert type(mapped) is WattfareUserRefusalError
    assert is_guardrail_intervention(mapped)
    assert (mapped.code, mapped.status_code, mapped.wattfare_status_code) == ("budget_paused", 400, 429)


def test_a_busy_budget_is_a_per_user_refusal_with_its_wait_never_a_spent_cap_or_a_rate_limit() -> None:
    assert "budget_busy" in PER_USER_REFUSALS
    error = wattfare.BudgetBusyError(
        "Busy.",
        status_code=429,
        code="budget_busy",
        request_id="req_b",
        retry_after=1.0,
        body={"error": {"code": "budget_busy", "message": "Busy.", "type": "rate_limit_error"}},
    )

    mapped: Any = litellm_error(error, model="m", app_user_id="u1")

    assert type(mapped) is WattfareBudgetBusyError
    assert is_guardrail_intervention(mapped), "a Router must never fall back from a busy user either"
    assert not isinstance(mapped, WattfarePaymentRequiredError | litellm.RateLimitError)
    assert (mapped.status_code, mapped.wattfare_status_code) == (400, 429)
    assert (mapped.code, mapped.app_user_id, mapped.request_id, mapped.retry_after) == (
        "budget_busy",
        "u1",
        "req_b",
        1.0,
    )
    assert (
        str(mapped) == "litellm.BadRequestError: Busy. [budget_busy] (app user 'u1'; retry after 1s; request id req_b)"
    )
    copy = pickle.loads(pickle.dumps(mapped))
    assert (type(copy), copy.retry_after, str(copy)) == (WattfareBudgetBusyError, 1.0, str(mapped))


def test_a_rate_limit_keeps_retry_after_for_the_routers_cooldown() -> None:
    error = wattfare.RateLimitError("slow down", status_code=429, code="rate_limited", retry_after=7.0)

    mapped: Any = litellm_error(error, model="m", app_user_id="u1")

    assert isinstance(mapped, litellm.RateLimitError)
    assert mapped.response.headers["retry-after"] == "7"


def test_a_spent_cap_keeps_its_data_and_is_a_bad_request_for_litellm() -> None:
    resets = datetime(2026, 12, 1, tzinfo=UTC)
    error = wattfare.BudgetExceededError(
        "Spending cap reached.",
        status_code=402,
        code="budget_exceeded",
        request_id="req_1",
        resets_at=resets,
        body={"error": {"code": "budget_exceeded", "message": "Spending cap reached.", "type": "insufficient_quota"}},
    )

    mapped: Any = litellm_error(error, model="m", app_user_id="u1")

    assert type(mapped) is WattfareBudgetExceededError
    assert isinstance(mapped, litellm.BadRequestError)
    assert (mapped.status_code, mapped.wattfare_status_code) == (400, 402)
    assert (mapped.code, mapped.app_user_id, mapped.request_id, mapped.resets_at) == (
        "budget_exceeded",
        "u1",
        "req_1",
        resets,
    )
    assert mapped.type == "insufficient_quota"
    assert str(mapped) == (
        "litellm.BadRequestError: Spending cap reached. [budget_exceeded]"
        " (app user 'u1'; resets at 2026-12-01T00:00:00Z; request id req_1)"
    )


def test_a_mapped_refusal_pickles_with_its_data() -> None:
    original = WattfareBudgetExceededError(
        "cap reached", model="m", app_user_id="u1", code="budget_exceeded", resets_at=datetime(2026, 12, 1, tzinfo=UTC)
    )

    copy = pickle.loads(pickle.dumps(original))

    assert type(copy) is WattfareBudgetExceededError
    assert (copy.app_user_id, copy.code, copy.resets_at, copy.status_code) == (
        "u1",
        "budget_exceeded",
        original.resets_at,
        400,
    )
    assert str(copy) == str(original)


# ---------------------------------------------------------------- registration


def test_register_installs_one_wattfare_provider_and_replaces_an_earlier_one(monkeypatch: pytest.MonkeyPatch) -> None:
    other = {"provider": "other", "custom_handler": WattfareLLM()}
    monkeypatch.setattr(litellm, "custom_provider_map", [other])

    first = wattfare_litellm.register()
    second = wattfare_litellm.register(WattfareLLM(base_url="http://elsewhere"))

    assert first is wattfare_litellm.wattfare_llm
    assert litellm.custom_provider_map == [other, {"provider": "wattfare", "custom_handler": second}]
    assert "wattfare" in litellm.provider_list

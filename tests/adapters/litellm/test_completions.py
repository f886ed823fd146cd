"""`litellm.completion` / `acompletion` with `wattfare/<model>`, against a real Wattfare server in test mode."""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

import json
import threading
from datetime import UTC
from decimal import Decimal
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

import wattfare_litellm
from tests.adapters.litellm.conftest import MODEL
from tests.adapters.litellm.request_log import RequestLog
from wattfare import Wattfare
from wattfare_litellm import (
    WattfareBudgetExceededError,
    WattfareLLM,
    WattfareNotConnectedError,
    WattfarePaymentRequiredError,
)

pytestmark = pytest.mark.xdist_group("litellm")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
HI = [{"role": "user", "content": "Say hi"}]
# What litellm's calls return is read as Any (as in test_router): its `@client` wrapper types every call as maybe a
# coroutine, `ModelResponse` does not declare `usage`, and a built response's choices may be text completion ones.


def charged(wattfare: Wattfare, user_id: str) -> tuple[int, Decimal]:
    """Requests and spend the ledger holds for a user."""
    rows = wattfare.usage(user_id).data
    return sum(r.requests for r in rows), sum((r.cost_usd for r in rows), Decimal(0))


def exact_cost(response: Any) -> Decimal:
    return Decimal(response._hidden_params["additional_headers"]["llm_provider-wattfare-cost-usd"])


# ---------------------------------------------------------------- the four call shapes


def test_completion_is_charged_to_the_user_named_by_litellms_user_param(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str, request_log: RequestLog
) -> None:
    reply: Any = litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, max_tokens=12, **credentials)

    assert reply.choices[0].message.content.startswith("Sandbox reply to: Say hi")
    assert reply.model == MODEL
    assert 0 < reply.usage.completion_tokens <= 12
    assert [r.app_user_id for r in request_log.completions()] == [user_id]
    requests, spent = charged(wattfare, user_id)
    assert requests == 1
    assert spent > 0
    assert exact_cost(reply) == spent
    assert Decimal(str(reply.usage.cost)) == spent
    assert reply._hidden_params["response_cost"] == pytest.approx(float(spent))


@pytest.mark.anyio
async def test_async_completion_is_charged_to_the_user(
    async_provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str, request_log: RequestLog
) -> None:
    reply: Any = await litellm.acompletion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)

    assert reply.choices[0].message.content.startswith("Sandbox reply to: Say hi")
    assert [r.app_user_id for r in request_log.completions()] == [user_id]
    assert Decimal(str(reply.usage.cost)) == charged(wattfare, user_id)[1] > 0


def test_streaming_yields_the_text_then_usage_with_wattfares_charge(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    stream: Any = litellm.completion(
        model=f"wattfare/{MODEL}",
        messages=HI,
        user=user_id,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        **credentials,
    )
    chunks = list(stream)

    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1, "the answer arrives in pieces"
    whole: Any = litellm.stream_chunk_builder(chunks)
    assert whole is not None
    assert whole.choices[0].message.content == "".join(texts)
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 6
    assert Decimal(str(whole.usage.cost)) == charged(wattfare, user_id)[1] > 0


@pytest.mark.anyio
async def test_async_streaming_yields_the_text_then_usage_with_wattfares_charge(
    async_provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    stream: Any = await litellm.acompletion(
        model=f"wattfare/{MODEL}",
        messages=HI,
        user=user_id,
        stream=True,
        stream_options={"include_usage": True},
        **credentials,
    )
    chunks = [chunk async for chunk in stream]

    whole: Any = litellm.stream_chunk_builder(chunks)
    assert whole is not None
    assert whole.choices[0].message.content.startswith("Sandbox reply to: Say hi")
    assert Decimal(str(whole.usage.cost)) == charged(wattfare, user_id)[1] > 0


def test_litellm_callbacks_see_wattfares_charge_as_response_cost(
    provider: WattfareLLM,
    credentials: dict[str, str],
    wattfare: Wattfare,
    user_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class CostLog(CustomLogger):
        def __init__(self) -> None:
            super().__init__()
            self.costs: list[float] = []
            self.logged = threading.Event()

        def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            self.costs.append(kwargs["response_cost"])
            self.logged.set()

    log = CostLog()
    monkeypatch.setattr(litellm, "callbacks", [log])

    litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)

    assert log.logged.wait(10), "LiteLLM logged no success"
    assert log.costs == [pytest.approx(float(charged(wattfare, user_id)[1]))]


# ---------------------------------------------------------------- an answer the cap shortened

# At Claude Sonnet's $15/M output, the server's 4,096-token allowance ($0.061) does not fit a 3-cent cap.
NEARLY_SPENT = "0.03"


def clamping(response: Any) -> tuple[str | None, str | None]:
    headers = response._hidden_params["additional_headers"]
    return headers.get("llm_provider-wattfare-max-tokens"), headers.get("llm_provider-wattfare-clamped")


def streamed_wattfare(chunks: list[Any]) -> dict[str, Any]:
    """Wattfare's block on a stream: on the delta of the chunk before the finish reason."""
    (block,) = [
        c.choices[0].delta.provider_specific_fields["wattfare"]
        for c in chunks
        if c.choices and c.choices[0].delta.provider_specific_fields
    ]
    return block


def test_an_answer_the_cap_shortened_says_so_in_the_hidden_params(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    wattfare.create_session(user_id, monthly_usd=NEARLY_SPENT)

    reply = litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)

    max_tokens, clamped = clamping(reply)
    assert clamped == "true"
    assert max_tokens is not None
    assert 0 < int(max_tokens) < 4096


@pytest.mark.anyio
async def test_an_answer_the_cap_did_not_shorten_says_so_too(
    async_provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    reply = await litellm.acompletion(
        model=f"wattfare/{MODEL}", messages=HI, user=user_id, max_tokens=12, **credentials
    )

    assert clamping(reply) == ("12", "false")


def test_a_stream_the_cap_shortened_says_so_in_its_provider_specific_fields(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    wattfare.create_session(user_id, monthly_usd=NEARLY_SPENT)

    stream: Any = litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, stream=True, **credentials)
    chunks = list(stream)

    block = streamed_wattfare(chunks)
    assert block["clamped"] is True
    assert 0 < block["max_tokens"] < 4096
    assert Decimal(block["cost_usd"]) == charged(wattfare, user_id)[1] > 0


@pytest.mark.anyio
async def test_an_async_stream_says_what_it_was_allowed_when_not_shortened(
    async_provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    stream: Any = await litellm.acompletion(
        model=f"wattfare/{MODEL}", messages=HI, user=user_id, stream=True, max_tokens=12, **credentials
    )

    block = streamed_wattfare([chunk async for chunk in stream])
    assert (block["max_tokens"], block["clamped"]) == (12, False)


# ---------------------------------------------------------------- tools and params


def test_tool_calls_come_back_in_openai_shape_and_the_tool_loop_closes(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
    first: Any = litellm.completion(
        model=f"wattfare/{MODEL}", messages=messages, tools=[WEATHER_TOOL], user=user_id, **credentials
    )

    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)

    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}]
    second: Any = litellm.completion(
        model=f"wattfare/{MODEL}", messages=messages, tools=[WEATHER_TOOL], user=user_id, **credentials
    )
    assert "Sunny, 21 C" in second.choices[0].message.content


@pytest.mark.anyio
async def test_streamed_tool_calls_rebuild_into_one_call_with_its_arguments(
    async_provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    stream: Any = await litellm.acompletion(
        model=f"wattfare/{MODEL}",
        messages=[{"role": "user", "content": "Weather in Oslo, with get_weather"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        user=user_id,
        stream=True,
        **credentials,
    )
    chunks = [chunk async for chunk in stream]

    whole: Any = litellm.stream_chunk_builder(chunks)
    assert whole is not None
    (call,) = whole.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}
    assert whole.choices[0].finish_reason == "tool_calls"


def test_openai_params_pass_through_to_wattfare(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    reply: Any = litellm.completion(
        model=f"wattfare/{MODEL}",
        messages=[{"role": "user", "content": "Give me a JSON object"}],
        response_format={"type": "json_object"},
        user=user_id,
        **credentials,
    )

    assert isinstance(json.loads(reply.choices[0].message.content), dict)


# ---------------------------------------------------------------- failures


def test_a_call_without_a_user_is_refused_before_reaching_wattfare(
    provider: WattfareLLM, credentials: dict[str, str], request_log: RequestLog
) -> None:
    with pytest.raises(litellm.BadRequestError, match="pass user="):
        litellm.completion(model=f"wattfare/{MODEL}", messages=HI, **credentials)

    assert request_log.completions() == []


def test_a_spent_cap_raises_budget_exceeded_once_with_its_data(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str, request_log: RequestLog
) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")

    with pytest.raises(WattfareBudgetExceededError) as caught:
        litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)

    exc = caught.value
    assert isinstance(exc, litellm.BadRequestError)
    assert (exc.status_code, exc.wattfare_status_code, exc.code) == (400, 402, "budget_exceeded")
    assert exc.app_user_id == user_id
    assert exc.resets_at is not None
    assert exc.resets_at.tzinfo is UTC
    assert len(request_log.completions(user_id)) == 1, "a 402 is never retried"


@pytest.mark.anyio
async def test_a_spent_cap_stops_an_async_stream_before_any_chunk(
    async_provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")

    received: list[Any] = []

    async def read_stream() -> None:
        stream: Any = await litellm.acompletion(
            model=f"wattfare/{MODEL}", messages=HI, user=user_id, stream=True, **credentials
        )
        received.extend([chunk async for chunk in stream])

    with pytest.raises(WattfareBudgetExceededError):
        await read_stream()
    assert received == []


def test_a_spent_cap_raises_when_a_sync_stream_is_opened(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")

    with pytest.raises(WattfareBudgetExceededError):
        litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, stream=True, **credentials)


def test_a_disconnected_user_raises_not_connected(
    provider: WattfareLLM, credentials: dict[str, str], wattfare: Wattfare, user_id: str
) -> None:
    litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)
    wattfare.user(user_id).disconnect()

    with pytest.raises(WattfareNotConnectedError) as caught:
        litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)

    assert isinstance(caught.value, WattfarePaymentRequiredError)
    assert caught.value.code == "not_connected"


def test_a_wrong_secret_key_raises_authentication_error(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    with pytest.raises(litellm.AuthenticationError):
        litellm.completion(
            model=f"wattfare/{MODEL}", messages=HI, user=user_id, **{**credentials, "api_key": "sk_test_wrong"}
        )


def test_a_publishable_key_is_reported_as_a_misconfigured_deployment(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str, request_log: RequestLog
) -> None:
    with pytest.raises(litellm.AuthenticationError, match=r"misconfigured.*publishable key"):
        litellm.completion(
            model=f"wattfare/{MODEL}", messages=HI, user=user_id, **{**credentials, "api_key": "pk_test_123"}
        )

    assert request_log.completions() == []


def test_an_upstream_outage_raises_bad_gateway_and_max_retries_reaches_the_sdk(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str, request_log: RequestLog
) -> None:
    outage = [{"role": "user", "content": "Hi [sandbox:upstream_error]"}]

    with pytest.raises(litellm.BadGatewayError, match="provider"):
        litellm.completion(model=f"wattfare/{MODEL}", messages=outage, user=user_id, max_retries=0, **credentials)
    assert len(request_log.completions(user_id)) == 1

    with pytest.raises(litellm.BadGatewayError):
        litellm.completion(model=f"wattfare/{MODEL}", messages=outage, user=user_id, max_retries=1, **credentials)
    assert len(request_log.completions(user_id)) == 3


def test_a_stream_that_fails_midway_raises_a_litellm_error(
    provider: WattfareLLM, credentials: dict[str, str], user_id: str
) -> None:
    stream: Any = litellm.completion(
        model=f"wattfare/{MODEL}",
        messages=[{"role": "user", "content": "Hi [sandbox:midstream_error]"}],
        user=user_id,
        stream=True,
        **credentials,
    )

    with pytest.raises(litellm.exceptions.MidStreamFallbackError, match="mid-stream") as caught:
        for _ in stream:
            pass

    # LiteLLM wraps what the handler raised, so that a Router may fall back mid-stream.
    assert isinstance(caught.value.original_exception, litellm.BadGatewayError)


def test_image_generation_is_refused_without_a_request(
    provider: WattfareLLM, credentials: dict[str, str], request_log: RequestLog, user_id: str
) -> None:
    settings: dict[str, Any] = {**credentials}
    with pytest.raises(litellm.BadRequestError, match="chat completions and embeddings only"):
        litellm.image_generation(model="wattfare/openai/gpt-image-1", prompt="a cat", user=user_id, **settings)

    assert request_log.completions() == []
    assert request_log.embeddings() == []


# ---------------------------------------------------------------- the handler's own connection pools


def test_the_default_handler_pools_sync_connections_and_closes_them(
    credentials: dict[str, str], user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litellm, "custom_provider_map", [])
    handler = wattfare_litellm.register(WattfareLLM())
    try:
        for _ in range(2):
            litellm.completion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)
        pool = handler._owned_http
        assert pool is not None
    finally:
        handler.close()
    assert pool.is_closed


@pytest.mark.anyio
async def test_the_default_handler_keeps_an_async_pool_per_event_loop_until_aclose(
    credentials: dict[str, str], user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litellm, "custom_provider_map", [])
    handler = wattfare_litellm.register(WattfareLLM())
    try:
        await litellm.acompletion(model=f"wattfare/{MODEL}", messages=HI, user=user_id, **credentials)
        stream: Any = await litellm.acompletion(
            model=f"wattfare/{MODEL}", messages=HI, user=user_id, stream=True, **credentials
        )
        assert [chunk async for chunk in stream]
        (pool,) = handler._owned_async_http.values()
    finally:
        await handler.aclose()
    assert pool.is_closed
    assert len(handler._owned_async_http) == 0

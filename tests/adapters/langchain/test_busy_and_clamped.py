"""ChatWattfare under a cap shared by parallel requests: a busy budget is retried, a clamped answer says so.

The core client is given an `httpx.MockTransport` that plays Wattfare's wire for these two cases (a 429
`budget_busy` refusal, and answers whose `max_tokens` the cap lowered); everything else is real.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk

import wattfare
from wattfare_langchain import ChatWattfare

pytestmark = pytest.mark.anyio

KEY = "sk_test_offline"
MODEL = "openai/gpt-4o-mini"
CLAMPED = {"Wattfare-Max-Tokens": "812", "Wattfare-Clamped": "true"}


def busy() -> httpx.Response:
    body = {"error": {"code": "budget_busy", "message": "Busy.", "type": "rate_limit_error", "param": None}}
    return httpx.Response(429, json=body, headers={"Retry-After": "0", "Wattfare-Request-Id": "req_busy"})


def answer(*, headers: dict[str, str] | None = None, clamped: bool | None = None) -> httpx.Response:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 812, "total_tokens": 815},
    }
    if clamped is not None:
        body["wattfare"] = {
            "requestId": "req_1",
            "costUsd": 0.01,
            "remainingUsd": 0,
            "maxTokens": 812,
            "clamped": clamped,
        }
    base = {"Wattfare-Cost-Usd": "0.01", "Wattfare-Remaining-Usd": "0", "Wattfare-Request-Id": "req_1"}
    return httpx.Response(200, json=body, headers={**base, **(headers or {})})


def streamed(*, headers: dict[str, str], final: dict[str, Any]) -> httpx.Response:
    def event(payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload)}\n\n"

    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    body = (
        event({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]})
        + event({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        + event({**head, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 812}, "wattfare": final})
        + "data: [DONE]\n\n"
    )
    return httpx.Response(
        200,
        content=body.encode(),
        headers={"content-type": "text/event-stream", "Wattfare-Request-Id": "req_s", **headers},
    )


class FakeWattfare:
    """Answers `POST /chat/completions` with the scripted responses in order (the last one from then on)."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]

    def llm(self, *, max_retries: int = 0) -> ChatWattfare:
        sync = wattfare.Wattfare(
            KEY, http_client=httpx.Client(transport=httpx.MockTransport(self)), max_retries=max_retries
        )
        transport = httpx.MockTransport(self)
        async_client = wattfare.AsyncWattfare(
            KEY, http_client=httpx.AsyncClient(transport=transport), max_retries=max_retries
        )
        return ChatWattfare(model=MODEL, user_id="u1", client=sync, async_client=async_client)


# ---------------------------------------------------------------- a busy budget


def test_the_core_client_retries_a_busy_budget_before_the_chain_sees_it() -> None:
    fake = FakeWattfare(busy(), busy(), answer())

    reply = fake.llm(max_retries=2).invoke("Hello")

    assert reply.text == "Hi"
    assert fake.requests == 3


async def test_the_async_core_client_retries_a_busy_budget_too() -> None:
    fake = FakeWattfare(busy(), answer())

    reply = await fake.llm(max_retries=2).ainvoke("Hello")

    assert reply.text == "Hi"
    assert fake.requests == 2


def test_a_budget_still_busy_after_the_retries_is_a_rate_limit_never_a_spent_cap() -> None:
    fake = FakeWattfare(busy())

    with pytest.raises(wattfare.BudgetBusyError) as raised:
        fake.llm(max_retries=1).invoke("Hello")

    assert isinstance(raised.value, wattfare.RateLimitError)
    assert not isinstance(raised.value, wattfare.PaymentRequiredError)
    assert fake.requests == 2


def test_with_retry_retries_a_busy_budget_as_it_retries_any_rate_limit() -> None:
    fake = FakeWattfare(busy(), busy(), answer())
    retrying = fake.llm().with_retry(
        retry_if_exception_type=(wattfare.RateLimitError,), stop_after_attempt=3, wait_exponential_jitter=False
    )

    assert retrying.invoke("Hello").text == "Hi"
    assert fake.requests == 3


def test_a_busy_budget_stops_a_stream_before_its_first_chunk_only_once_retries_run_out() -> None:
    fake = FakeWattfare(busy())

    with pytest.raises(wattfare.BudgetBusyError):
        list(fake.llm(max_retries=2).stream("Hello"))

    assert fake.requests == 3


# ---------------------------------------------------------------- a clamped answer


def test_a_clamped_answer_says_so_in_its_response_metadata() -> None:
    reply = FakeWattfare(answer(headers=CLAMPED)).llm().invoke("Hello")

    assert reply.response_metadata["wattfare"] == {
        "cost_usd": "0.01",
        "remaining_usd": "0",
        "request_id": "req_1",
        "max_tokens": 812,
        "clamped": True,
    }
    assert reply.response_metadata["finish_reason"] == "length"


async def test_a_clamped_answer_says_so_from_the_body_when_the_headers_do_not() -> None:
    reply = await FakeWattfare(answer(clamped=True)).llm().ainvoke("Hello")

    assert (reply.response_metadata["wattfare"]["max_tokens"], reply.response_metadata["wattfare"]["clamped"]) == (
        812,
        True,
    )


def test_an_answer_the_cap_did_not_cut_says_clamped_false() -> None:
    reply = (
        FakeWattfare(answer(headers={"Wattfare-Max-Tokens": "4096", "Wattfare-Clamped": "false"})).llm().invoke("Hi")
    )

    assert (reply.response_metadata["wattfare"]["max_tokens"], reply.response_metadata["wattfare"]["clamped"]) == (
        4096,
        False,
    )


def test_a_clamped_stream_says_so_on_its_last_chunk_and_in_the_sum() -> None:
    final = {"requestId": "req_s", "costUsd": 0.01, "remainingUsd": 0, "maxTokens": 812, "clamped": True}
    fake = FakeWattfare(streamed(headers=CLAMPED, final=final))

    chunks = list(fake.llm().stream("Hello"))
    whole = sum(chunks[1:], chunks[0])

    assert chunks[-1].response_metadata["wattfare"]["clamped"] is True
    assert isinstance(whole, AIMessageChunk)
    assert whole.text == "Hi"
    assert whole.response_metadata["wattfare"]["max_tokens"] == 812
    assert whole.response_metadata["wattfare"]["clamped"] is True
    assert whole.response_metadata["finish_reason"] == "length"


async def test_a_stream_whose_final_chunk_says_nothing_of_clamping_keeps_what_its_headers_said() -> None:
    final = {"requestId": "req_s", "costUsd": 0.01, "remainingUsd": 0}
    fake = FakeWattfare(streamed(headers=CLAMPED, final=final))

    chunks = [chunk async for chunk in fake.llm().astream("Hello")]

    assert chunks[-1].response_metadata["wattfare"]["max_tokens"] == 812
    assert chunks[-1].response_metadata["wattfare"]["clamped"] is True

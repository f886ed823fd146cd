"""WattfareLLM under a cap shared by parallel requests: a busy budget is retried, a clamped answer says so.

The SDK is given an `httpx.MockTransport` that plays Wattfare's wire for these two cases (a 429
`budget_busy` refusal, and answers whose `max_tokens` the cap lowered); everything else is real. The
last tests ask a real `wattfare serve` process (`llamaindex_server`, the sandbox upstream).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

import wattfare
from tests.support.wattfare_server import ServerProcess
from wattfare_llamaindex import WattfareLLM

pytestmark = pytest.mark.anyio

MODEL = "openai/gpt-4o-mini"
HELLO = [ChatMessage(role=MessageRole.USER, content="Hello")]
CLAMPED = {"Wattfare-Max-Tokens": "812", "Wattfare-Clamped": "true"}


def busy() -> httpx.Response:
    body = {"error": {"code": "budget_busy", "message": "Busy.", "type": "rate_limit_error", "param": None}}
    return httpx.Response(429, json=body, headers={"Retry-After": "0", "Wattfare-Request-Id": "req_busy"})


def answer(*, headers: dict[str, str] | None = None, block: dict[str, Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 812, "total_tokens": 815},
    }
    if block is not None:
        body["wattfare"] = block
    base = {"Wattfare-Cost-Usd": "0.01", "Wattfare-Remaining-Usd": "0", "Wattfare-Request-Id": "req_1"}
    return httpx.Response(200, json=body, headers={**base, **(headers or {})})


def streamed(*, headers: dict[str, str], final: dict[str, Any]) -> httpx.Response:
    def event(payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload)}\n\n"

    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    usage = {"prompt_tokens": 3, "completion_tokens": 812, "total_tokens": 815}
    body = (
        event({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]})
        + event({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        + event({**head, "choices": [], "usage": usage, "wattfare": final})
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

    def llm(self, *, max_retries: int = 0) -> WattfareLLM:
        return WattfareLLM(
            model=MODEL,
            user_id="u_1",
            secret_key="sk_test_offline",
            context_window=8192,
            max_retries=max_retries,
            http_client=httpx.Client(transport=httpx.MockTransport(self)),
            async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(self)),
        )


# ---------------------------------------------------------------- a busy budget


def test_the_sdk_retries_a_busy_budget_before_the_llm_answers() -> None:
    fake = FakeWattfare(busy(), busy(), answer())

    response = fake.llm(max_retries=2).chat(HELLO)

    assert response.message.content == "Hi"
    assert fake.requests == 3


async def test_the_async_sdk_retries_a_busy_budget_too() -> None:
    fake = FakeWattfare(busy(), answer())

    response = await fake.llm(max_retries=2).achat(HELLO)

    assert response.message.content == "Hi"
    assert fake.requests == 2


def test_a_budget_still_busy_after_the_retries_is_a_rate_limit_never_a_spent_cap() -> None:
    fake = FakeWattfare(busy())

    with pytest.raises(wattfare.BudgetBusyError) as raised:
        fake.llm(max_retries=1).complete("Hello")

    assert isinstance(raised.value, wattfare.RateLimitError)
    assert not isinstance(raised.value, wattfare.BudgetExceededError)
    assert fake.requests == 2


# ---------------------------------------------------------------- a clamped answer


def test_a_clamped_answer_says_so_in_raw_and_additional_kwargs() -> None:
    response = FakeWattfare(answer(headers=CLAMPED)).llm().chat(HELLO)

    assert response.raw is not None
    assert (response.raw["wattfare"]["max_tokens"], response.raw["wattfare"]["clamped"]) == (812, True)
    assert (response.additional_kwargs["max_tokens"], response.additional_kwargs["clamped"]) == (812, True)
    assert response.raw["choices"][0]["finish_reason"] == "length"


async def test_a_completion_keeps_what_the_bodys_wattfare_block_says() -> None:
    block = {"requestId": "req_1", "costUsd": 0.01, "remainingUsd": 0, "maxTokens": 640, "clamped": True}

    completion = await FakeWattfare(answer(block=block)).llm().acomplete("Hello")

    assert (completion.additional_kwargs["max_tokens"], completion.additional_kwargs["clamped"]) == (640, True)
    assert completion.raw is not None
    assert completion.raw["wattfare"]["clamped"] is True


def test_an_answer_the_cap_did_not_cut_says_clamped_false() -> None:
    headers = {"Wattfare-Max-Tokens": "4096", "Wattfare-Clamped": "false"}

    response = FakeWattfare(answer(headers=headers)).llm().chat(HELLO)

    assert (response.additional_kwargs["max_tokens"], response.additional_kwargs["clamped"]) == (4096, False)


def test_a_clamped_stream_says_so_on_its_last_response() -> None:
    final = {"requestId": "req_s", "costUsd": 0.01, "remainingUsd": 0, "maxTokens": 812, "clamped": True}

    responses = list(FakeWattfare(streamed(headers=CLAMPED, final=final)).llm().stream_chat(HELLO))

    last = responses[-1]
    assert last.message.content == "Hi"
    assert (last.additional_kwargs["max_tokens"], last.additional_kwargs["clamped"]) == (812, True)
    assert last.raw is not None
    assert last.raw["wattfare"]["clamped"] is True


async def test_a_final_chunk_that_does_not_repeat_the_clamping_keeps_what_the_headers_said() -> None:
    final = {"requestId": "req_s", "costUsd": 0.01, "remainingUsd": 0}
    llm = FakeWattfare(streamed(headers=CLAMPED, final=final)).llm()

    responses = [response async for response in await llm.astream_chat(HELLO)]

    last = responses[-1]
    assert (last.additional_kwargs["max_tokens"], last.additional_kwargs["clamped"]) == (812, True)
    assert last.raw is not None
    assert (last.raw["wattfare"]["max_tokens"], last.raw["wattfare"]["clamped"]) == (812, True)


# ---------------------------------------------------------------- against a real server


@pytest.mark.xdist_group("llamaindex-server")
async def test_a_real_answer_the_cap_shortened_says_so_whole_and_streamed(llamaindex_server: ServerProcess) -> None:
    server = llamaindex_server
    # gpt-4o-mini's 4,096-token allowance costs $0.0025 at $0.60/M: a tenth of a cent affords about 1,600.
    with wattfare.Wattfare(server.secret, server.base_url) as wf:
        wf.create_session("li-nearly-spent", monthly_usd="0.001")
    llm = WattfareLLM(model=MODEL, user_id="li-nearly-spent", secret_key=server.secret, base_url=server.base_url)
    try:
        whole = await llm.achat(HELLO)
        streamed = [response async for response in await llm.astream_chat(HELLO)][-1]
    finally:
        await llm.aclose()
        llm.close()

    for response in (whole, streamed):
        assert response.additional_kwargs["clamped"] is True
        assert 0 < response.additional_kwargs["max_tokens"] < 4096
        assert response.raw is not None
        assert response.raw["wattfare"]["clamped"] is True

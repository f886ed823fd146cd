"""The stand-in's modes, checked through the real HTTP upstream, since proxy tests rely on each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.server.upstream.exchange import chat_request, read_all, sse_data
from tests.support.standin_upstream import StandIn
from wattfare.server.upstream.openai_compatible import OpenAICompatibleUpstream

pytestmark = pytest.mark.anyio


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra}


@pytest.fixture
async def upstream(standin: StandIn) -> AsyncIterator[OpenAICompatibleUpstream]:
    client = OpenAICompatibleUpstream(standin.base_url, "k", timeout=5.0)
    try:
        yield client
    finally:
        await client.aclose()


async def streamed(upstream: OpenAICompatibleUpstream, payload: dict[str, Any]) -> list[Any]:
    data = sse_data(await read_all(await upstream.send(chat_request({**payload, "stream": True}))))
    return [orjson.loads(item) if item != b"[DONE]" else "[DONE]" for item in data]


async def test_cost_models_always_report_usage_cost_like_openrouter(upstream: OpenAICompatibleUpstream) -> None:
    events = await streamed(upstream, chat("standin/cost-0.000123"))
    body = orjson.loads(await read_all(await upstream.send(chat_request(chat("standin/cost-0.000123")))))

    assert events[-2]["usage"]["cost"] == 0.000123
    assert events[-2]["choices"] == []
    assert body["usage"]["cost"] == 0.000123


async def test_normal_models_stream_usage_only_when_asked(upstream: OpenAICompatibleUpstream) -> None:
    silent = await streamed(upstream, chat("standin/ok"))
    counted = await streamed(upstream, chat("standin/ok", stream_options={"include_usage": True}))

    assert not any("usage" in event for event in silent[:-1])
    assert counted[-2]["usage"]["completion_tokens"] == 20


async def test_runaway_ignores_max_tokens_and_reports_what_it_sent(upstream: OpenAICompatibleUpstream) -> None:
    events = await streamed(upstream, chat("standin/runaway", max_tokens=5, stream_options={"include_usage": True}))

    tokens = [event for event in events[:-1] if event["choices"] and event["choices"][0]["delta"].get("content")]
    assert len(tokens) == 500
    assert events[-2]["usage"]["completion_tokens"] == 500


async def test_no_usage_never_reports_usage(upstream: OpenAICompatibleUpstream) -> None:
    events = await streamed(upstream, chat("standin/no-usage", stream_options={"include_usage": True}))
    body = orjson.loads(await read_all(await upstream.send(chat_request(chat("standin/no-usage")))))

    assert not any("usage" in event for event in events[:-1])
    assert "usage" not in body


async def test_midstream_error_sends_the_openrouter_error_chunk(upstream: OpenAICompatibleUpstream) -> None:
    events = await streamed(upstream, chat("standin/midstream-error"))

    assert len(events) == 4
    assert events[-1]["error"]["code"] == 502
    assert events[-1]["choices"][0]["finish_reason"] == "error"


async def test_malformed_answers_200_with_a_body_that_is_not_json(upstream: OpenAICompatibleUpstream) -> None:
    response = await upstream.send(chat_request(chat("standin/malformed")))

    assert response.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(await read_all(response))


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, "authentication"), (402, "payment_required"), (429, "rate_limit_exceeded"), (502, "provider_unavailable")],
)
async def test_http_models_answer_their_status_with_an_openrouter_error(
    upstream: OpenAICompatibleUpstream, status: int, error_type: str
) -> None:
    response = await upstream.send(chat_request(chat(f"standin/http-{status}")))

    assert response.status == status
    assert response.body is not None
    error = orjson.loads(response.body)["error"]
    assert (error["code"], error["metadata"]["error_type"]) == (status, error_type)


async def test_stats_count_requests_per_model(upstream: OpenAICompatibleUpstream, standin: StandIn) -> None:
    before = standin.stats()["requests"].get("standin/ok", 0)
    for _ in range(2):
        await read_all(await upstream.send(chat_request(chat("standin/ok", max_tokens=3))))

    stats = standin.stats()
    assert stats["requests"]["standin/ok"] == before + 2
    assert stats["last_request"]["max_tokens"] == 3


# -- embeddings


async def embedded(upstream: OpenAICompatibleUpstream, model: str, **payload: Any) -> dict[str, Any]:
    answer = await upstream.embed(chat_request({"model": model, "input": ["abcd", "abcdefgh"], **payload}))
    assert answer.status == 200
    return orjson.loads(await read_all(answer))


async def test_embedding_modes_answer_as_their_names_say(upstream: OpenAICompatibleUpstream) -> None:
    plain = await embedded(upstream, "standin/embed")
    narrow = await embedded(upstream, "standin/embed", dimensions=3, encoding_format="base64")

    assert [len(item["embedding"]) for item in plain["data"]] == [8, 8]
    assert plain["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert all(isinstance(item["embedding"], str) for item in narrow["data"])
    assert "usage" not in await embedded(upstream, "standin/embed-no-usage")
    assert (await embedded(upstream, "standin/embed-undercount"))["usage"]["prompt_tokens"] == 0
    assert (await embedded(upstream, "standin/embed-negative-usage"))["usage"]["prompt_tokens"] == -3
    assert (await embedded(upstream, "standin/embed-cost-0.000123"))["usage"]["cost"] == 0.000123
    assert (await embedded(upstream, "standin/embed-error-body"))["error"]["code"] == 502

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.server.upstream.exchange import chat_request, read_all, sse_data
from wattfare.server.upstream.sandbox.models import SandboxUpstream

pytestmark = pytest.mark.anyio


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_error_answers_502_with_an_openrouter_error_body(sandbox: SandboxUpstream, stream: bool) -> None:
    response = await sandbox.send(chat_request(chat("Hi [sandbox:upstream_error]", stream=stream)))

    assert response.status == 502
    assert response.chunks is None
    assert response.body is not None
    error = orjson.loads(response.body)["error"]
    assert error["code"] == 502
    assert error["message"]
    assert error["metadata"]["error_type"] == "provider_unavailable"


@pytest.mark.parametrize("n", [1, 2])
async def test_midstream_error_sends_three_tokens_then_an_error_chunk(sandbox: SandboxUpstream, n: int) -> None:
    response = await sandbox.send(chat_request(chat("Hi [sandbox:midstream_error]", stream=True, n=n)))

    assert response.status == 200
    data = sse_data(await read_all(response))
    assert b"[DONE]" not in data
    *tokens, failure = (orjson.loads(item) for item in data)
    assert [ChatCompletionChunk.model_validate(chunk).choices[0].delta.content for chunk in tokens] == [
        "Sandbox ",
        "reply ",
        "to: ",
    ]
    assert failure["error"]["code"] == 502
    assert failure["error"]["metadata"]["error_type"] == "provider_unavailable"
    assert failure["choices"][0]["finish_reason"] == "error"
    assert failure["id"] == tokens[0]["id"]


async def test_midstream_error_without_streaming_returns_the_partial_answer_and_the_error(
    sandbox: SandboxUpstream,
) -> None:
    response = await sandbox.send(chat_request(chat("Hi [sandbox:midstream_error]")))

    assert response.status == 200
    body = orjson.loads(await read_all(response))
    assert body["error"]["metadata"]["error_type"] == "provider_unavailable"
    assert body["choices"][0]["finish_reason"] == "error"
    assert body["choices"][0]["message"]["content"] == "Sandbox reply to: "


async def test_slow_waits_between_streamed_chunks(sandbox: SandboxUpstream) -> None:
    started = time.monotonic()
    response = await sandbox.send(chat_request(chat("Hi [sandbox:slow]", stream=True, max_tokens=4)))
    data = sse_data(await read_all(response))

    # 4 tokens and a finish chunk: 4 pauses of 50 ms (a lower bound, never an upper one).
    assert len(data) == 6
    assert time.monotonic() - started >= 4 * 0.045


async def test_long_runs_to_max_tokens(sandbox: SandboxUpstream) -> None:
    response = await sandbox.send(chat_request(chat("Hi [sandbox:long]", stream=True, max_tokens=700)))
    parsed = [ChatCompletionChunk.model_validate_json(item) for item in sse_data(await read_all(response))[:-1]]

    assert len([chunk for chunk in parsed if chunk.choices[0].delta.content]) == 700
    assert parsed[-1].choices[0].finish_reason == "length"


async def test_long_without_max_tokens_gives_over_4096_tokens(sandbox: SandboxUpstream) -> None:
    answer = ChatCompletion.model_validate_json(
        await read_all(await sandbox.send(chat_request(chat("[sandbox:long]"))))
    )

    assert answer.usage is not None
    assert answer.usage.completion_tokens > 4096
    assert answer.choices[0].finish_reason == "stop"


async def test_magic_in_an_earlier_message_is_ignored(sandbox: SandboxUpstream) -> None:
    payload = chat("Hi")
    payload["messages"] = [
        {"role": "user", "content": "[sandbox:upstream_error]"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "again"},
    ]

    assert (await sandbox.send(chat_request(payload))).status == 200

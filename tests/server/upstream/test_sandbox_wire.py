from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.server.upstream.exchange import chat_request, read_all, sse_data
from wattfare.server.upstream.sandbox.content import count_prompt_tokens
from wattfare.server.upstream.sandbox.models import SandboxUpstream, load_bundled_models

pytestmark = pytest.mark.anyio

QUESTION = "What is the capital of France, and why did it become the capital?"


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": QUESTION}], **extra}


async def completion(sandbox: SandboxUpstream, payload: dict[str, Any]) -> ChatCompletion:
    response = await sandbox.send(chat_request(payload))
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    return ChatCompletion.model_validate_json(await read_all(response))


async def chunks(sandbox: SandboxUpstream, payload: dict[str, Any]) -> list[ChatCompletionChunk]:
    response = await sandbox.send(chat_request({**payload, "stream": True}))
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.body is None
    data = sse_data(await read_all(response))
    assert data[-1] == b"[DONE]"
    return [ChatCompletionChunk.model_validate_json(item) for item in data[:-1]]


def streamed_text(parsed: list[ChatCompletionChunk], index: int = 0) -> str:
    return "".join(choice.delta.content or "" for chunk in parsed for choice in chunk.choices if choice.index == index)


async def test_a_plain_answer_is_a_valid_chat_completion_that_quotes_the_question(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat())

    assert answer.id.startswith("chatcmpl-sbx-")
    assert answer.object == "chat.completion"
    assert answer.model == "openai/gpt-4o-mini"
    assert answer.system_fingerprint == "sandbox"
    assert answer.created == int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    [choice] = answer.choices
    assert choice.message.role == "assistant"
    assert choice.message.content is not None
    assert choice.message.content.startswith(f"Sandbox reply to: {QUESTION[:60]}")
    assert choice.finish_reason == "stop"


async def test_the_stream_carries_the_same_answer_as_the_body(sandbox: SandboxUpstream) -> None:
    whole = await completion(sandbox, chat())
    parsed = await chunks(sandbox, chat())

    assert streamed_text(parsed) == whole.choices[0].message.content
    assert parsed[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices[0].delta.role is None for chunk in parsed[1:])
    assert [chunk.choices[0].finish_reason for chunk in parsed][-1] == "stop"
    assert {chunk.id for chunk in parsed} == {parsed[0].id}
    assert all(chunk.object == "chat.completion.chunk" and chunk.system_fingerprint == "sandbox" for chunk in parsed)


async def test_each_streamed_chunk_holds_one_token(sandbox: SandboxUpstream) -> None:
    parsed = await chunks(sandbox, chat())
    answer = await completion(sandbox, chat())

    contents = [chunk.choices[0].delta.content for chunk in parsed[:-1]]
    assert all(content and content.strip() and " " not in content.strip() for content in contents)
    assert answer.usage is not None
    assert len(contents) == answer.usage.completion_tokens


async def test_answers_are_byte_identical_for_identical_requests() -> None:
    first = SandboxUpstream(clock=lambda: datetime(2025, 1, 1, tzinfo=UTC))
    second = SandboxUpstream(clock=lambda: datetime(2025, 1, 1, tzinfo=UTC))

    for payload in (chat(), chat(stream=True, stream_options={"include_usage": True})):
        assert await read_all(await first.send(chat_request(payload))) == await read_all(
            await second.send(chat_request(payload))
        )


async def test_the_seed_changes_the_filler_but_not_the_quoted_question(sandbox: SandboxUpstream) -> None:
    plain = (await completion(sandbox, chat())).choices[0].message.content
    seeded = (await completion(sandbox, chat(seed=7))).choices[0].message.content
    again = (await completion(sandbox, chat(seed=7))).choices[0].message.content

    assert plain != seeded
    assert seeded == again
    assert plain is not None
    assert seeded is not None
    assert seeded.startswith(f"Sandbox reply to: {QUESTION[:60]}")


@pytest.mark.parametrize("limit_key", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_truncates_with_finish_reason_length(sandbox: SandboxUpstream, limit_key: str) -> None:
    answer = await completion(sandbox, chat(**{limit_key: 5}))
    parsed = await chunks(sandbox, chat(**{limit_key: 5}))

    assert answer.choices[0].message.content == "Sandbox reply to: What is "
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 5
    assert len([chunk for chunk in parsed if chunk.choices[0].delta.content]) == 5
    assert parsed[-1].choices[0].finish_reason == "length"


async def test_max_completion_tokens_wins_over_max_tokens(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat(max_tokens=50, max_completion_tokens=3))

    assert answer.usage is not None
    assert answer.usage.completion_tokens == 3


async def test_a_stop_sequence_ends_the_answer_before_it(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat(stop=["nothing-like-this", "capital"]))
    single = await completion(sandbox, chat(stop="France"))

    assert answer.choices[0].message.content == "Sandbox reply to: What is the "
    assert answer.choices[0].finish_reason == "stop"
    assert single.choices[0].message.content == "Sandbox reply to: What is the capital of "


async def test_n_gives_distinct_choices_each_streamed_with_its_index(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, chat(n=3))
    parsed = await chunks(sandbox, chat(n=3))

    contents = [choice.message.content for choice in answer.choices]
    assert [choice.index for choice in answer.choices] == [0, 1, 2]
    assert len(set(contents)) == 3
    assert [streamed_text(parsed, index) for index in range(3)] == contents
    assert answer.usage is not None
    assert answer.usage.completion_tokens == sum(len((content or "").split()) for content in contents)


async def test_usage_is_counted_and_never_priced(sandbox: SandboxUpstream) -> None:
    body = await read_all(await sandbox.send(chat_request(chat())))
    answer = ChatCompletion.model_validate_json(body)

    assert answer.usage is not None
    assert answer.usage.prompt_tokens == count_prompt_tokens([{"role": "user", "content": QUESTION}])
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert "cost" not in orjson.loads(body)["usage"]


async def test_a_stream_reports_usage_only_when_asked(sandbox: SandboxUpstream) -> None:
    silent = await chunks(sandbox, chat())
    counted = await chunks(sandbox, chat(stream_options={"include_usage": True}))
    whole = await completion(sandbox, chat())

    assert all(chunk.usage is None and chunk.choices for chunk in silent)
    *body, last = counted
    assert last.choices == []
    assert last.usage == whole.usage
    assert all(chunk.usage is None and chunk.choices for chunk in body)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=5))
def test_prompt_tokens_never_exceed_the_utf8_bytes_of_the_messages(texts: list[str]) -> None:
    messages = [{"role": "user", "content": text} for text in texts]

    assert count_prompt_tokens(messages) <= sum(len(text.encode()) for text in texts)


def test_prompt_tokens_count_text_parts_of_content_lists() -> None:
    parts = [{"type": "text", "text": "a" * 400}, {"type": "image_url", "image_url": {"url": "data:,"}}]

    assert count_prompt_tokens([{"role": "user", "content": parts}]) == 100 + 3


async def test_unknown_models_are_still_answered(sandbox: SandboxUpstream) -> None:
    answer = await completion(sandbox, {**chat(), "model": "nobody/no-such-model"})

    assert answer.model == "nobody/no-such-model"


async def test_the_bundled_snapshot_is_listed_by_default() -> None:
    listed = await SandboxUpstream().list_models()

    assert listed == load_bundled_models()
    assert "openai/gpt-4o-mini" in {model["id"] for model in listed}


async def test_given_models_replace_the_snapshot() -> None:
    models = [{"id": "test/model", "pricing": {"prompt": "0.000001", "completion": "0.000002"}}]

    assert await SandboxUpstream(models).list_models() == models

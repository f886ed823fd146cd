from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattfare.metering import (
    BASE_TOKEN_ALLOWANCE,
    IMAGE_TOKEN_ALLOWANCE,
    PER_MESSAGE_TOKEN_ALLOWANCE,
    image_part_count,
    prompt_token_bound,
)


def utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


# Every character, astral planes and lone surrogates included.
any_text = st.text(st.characters(codec=None, categories=None), max_size=60)

text_parts = any_text.map(lambda text: {"type": "text", "text": text})
tool_calls: st.SearchStrategy[dict[str, Any]] = st.builds(
    lambda name, arguments: {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}},
    any_text,
    any_text,
)


@st.composite
def messages_with_texts(draw: st.DrawFn) -> tuple[dict[str, object], list[str]]:
    """A chat message and every string in it that a chat template could render as text."""
    role = draw(st.sampled_from(["system", "user", "assistant", "tool"]))
    message: dict[str, object] = {"role": role}
    texts = [role]
    if draw(st.booleans()):
        content = draw(any_text)
        message["content"] = content
        texts.append(content)
    else:
        parts = draw(st.lists(text_parts, max_size=4))
        message["content"] = parts
        texts += [part["text"] for part in parts]
    if draw(st.booleans()):
        name = draw(any_text)
        message["name"] = name
        texts.append(name)
    if role == "assistant":
        calls = draw(st.lists(tool_calls, max_size=2))
        message["tool_calls"] = calls
        texts += [call["function"][key] for call in calls for key in ("name", "arguments")]
    if role == "tool":
        call_id = draw(any_text)
        message["tool_call_id"] = call_id
        texts.append(call_id)
    return message, texts


@given(st.lists(messages_with_texts(), max_size=6))
def test_the_bound_covers_every_utf8_byte_of_text_plus_the_allowances(
    drawn: list[tuple[dict[str, object], list[str]]],
) -> None:
    messages = [message for message, _ in drawn]
    text_bytes = sum(utf8(text) for _, texts in drawn for text in texts)
    allowances = BASE_TOKEN_ALLOWANCE + PER_MESSAGE_TOKEN_ALLOWANCE * len(messages)
    assert prompt_token_bound(messages) >= text_bytes + allowances


@given(any_text, any_text)
def test_tools_and_extra_schemas_add_at_least_their_text(description: str, schema_text: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "f", "description": description, "parameters": {}}}]
    extra = {"type": "json_schema", "json_schema": {"name": "answer", "description": schema_text}}
    base = prompt_token_bound(messages)
    assert prompt_token_bound(messages, tools) >= base + utf8(description)
    assert prompt_token_bound(messages, None, extra) >= base + utf8(schema_text)
    assert prompt_token_bound(messages, tools, extra) >= base + utf8(description) + utf8(schema_text)


def test_an_empty_request_still_carries_the_template_allowances() -> None:
    assert prompt_token_bound([]) == BASE_TOKEN_ALLOWANCE + len("[]")
    assert prompt_token_bound([{}]) == BASE_TOKEN_ALLOWANCE + PER_MESSAGE_TOKEN_ALLOWANCE + len("[{}]")


def test_multibyte_text_counts_its_utf8_bytes_not_its_characters() -> None:
    ascii_bound = prompt_token_bound([{"content": "a" * 100}])
    emoji_bound = prompt_token_bound([{"content": "😀" * 100}])
    assert emoji_bound - ascii_bound == 300


def test_media_parts_count_a_fixed_allowance_instead_of_their_payload() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 1_000_000}}
    audio = {"type": "input_audio", "input_audio": {"data": "B" * 500_000, "format": "wav"}}
    document = {"type": "file", "file": {"filename": "a.pdf", "file_data": "C" * 500_000}}
    text = {"type": "text", "text": "describe these"}
    with_media = prompt_token_bound([{"role": "user", "content": [text, image, audio, document]}])
    text_only = prompt_token_bound([{"role": "user", "content": [text]}])
    assert with_media == text_only + 3 * IMAGE_TOKEN_ALLOWANCE


def test_unknown_part_types_are_counted_by_their_bytes() -> None:
    part = {"type": "mystery", "payload": "x" * 10_000}
    assert prompt_token_bound([{"content": [part]}]) >= 10_000


def test_the_bound_does_not_change_the_request() -> None:
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]
    before = json.dumps(messages)
    prompt_token_bound(messages)
    assert json.dumps(messages) == before


def test_image_parts_are_counted_for_per_image_prices() -> None:
    image = {"type": "image_url", "image_url": {"url": "u"}}
    messages = [
        {"role": "user", "content": [image, {"type": "text", "text": "a"}, image]},
        {"role": "user", "content": "no parts"},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}, image]},
    ]
    assert image_part_count(messages) == 3
    assert image_part_count([]) == 0


def test_data_that_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError):
        prompt_token_bound([{"content": object()}])

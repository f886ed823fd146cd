from __future__ import annotations

from decimal import Decimal
from typing import Any

from wattfare import ChatCompletionChunk, StreamAccumulator


def chunk(**fields: Any) -> ChatCompletionChunk:
    base: dict[str, Any] = {"id": "c1", "created": 1780000000, "model": "m", "choices": []}
    return ChatCompletionChunk.model_validate({**base, **fields})


def choice(index: int = 0, finish_reason: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish_reason}


def fold(*chunks: ChatCompletionChunk, **kwargs: Any) -> StreamAccumulator:
    acc = StreamAccumulator(**kwargs)
    for c in chunks:
        acc.add(c)
    return acc


def test_content_deltas_are_concatenated_into_one_message() -> None:
    acc = fold(
        chunk(choices=[choice(role="assistant", content="")]),
        chunk(choices=[choice(content="Hel")]),
        chunk(choices=[choice(content="lo")]),
        chunk(choices=[choice(finish_reason="stop")]),
    )

    completion = acc.completion()
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == acc.finish_reason == "stop"
    assert (completion.id, completion.model, completion.created) == ("c1", "m", 1780000000)


def test_tool_call_fragments_are_merged_by_index() -> None:
    acc = fold(
        chunk(
            choices=[
                choice(
                    role="assistant",
                    tool_calls=[
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        },
                    ],
                )
            ]
        ),
        chunk(
            choices=[
                choice(
                    tool_calls=[
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": '{"tz'},
                        },
                    ]
                )
            ]
        ),
        chunk(choices=[choice(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}])]),
        chunk(choices=[choice(tool_calls=[{"index": 1, "function": {"arguments": '": "UTC"}'}}])]),
        # Some providers repeat the id on every fragment: it must not be doubled.
        chunk(choices=[choice(tool_calls=[{"index": 0, "id": "call_a", "function": {"arguments": '"Paris"}'}}])]),
        chunk(choices=[choice(finish_reason="tool_calls")]),
    )

    message = acc.completion().choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert [(t.id, t.type, t.function.name, t.function.arguments) for t in message.tool_calls] == [
        ("call_a", "function", "get_weather", '{"city": "Paris"}'),
        ("call_b", "function", "get_time", '{"tz": "UTC"}'),
    ]
    assert acc.finish_reason == "tool_calls"


def test_the_final_chunk_brings_usage_cost_and_the_budget_after_the_request() -> None:
    acc = fold(
        chunk(choices=[choice(content="hi", finish_reason="stop")]),
        chunk(
            usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6, "cost": 0.0000071},
            wattfare={"costUsd": 0.0000071, "remainingUsd": 4.2499929, "requestId": "req_9"},
        ),
        request_id="req_9",
        remaining_usd=Decimal("4.25"),
    )

    assert acc.usage is not None
    assert (acc.usage.prompt_tokens, acc.usage.completion_tokens, acc.usage.total_tokens) == (5, 1, 6)
    assert acc.usage.cost == Decimal("0.0000071")
    assert acc.cost_usd == Decimal("0.0000071")
    assert acc.remaining_usd == Decimal("4.2499929")
    info = acc.completion().wattfare
    assert (info.cost_usd, info.remaining_usd, info.request_id) == (Decimal("0.0000071"), Decimal("4.2499929"), "req_9")


def test_before_the_final_chunk_the_remaining_budget_is_the_one_before_the_request() -> None:
    acc = fold(chunk(choices=[choice(content="hi")]), remaining_usd=Decimal("4.25"))

    assert acc.remaining_usd == Decimal("4.25")
    assert acc.usage is None
    assert acc.cost_usd is None


def test_an_explicit_null_remaining_budget_means_unlimited() -> None:
    acc = fold(chunk(wattfare={"costUsd": 0.01, "remainingUsd": None}), remaining_usd=Decimal(5))

    assert acc.remaining_usd is None


def test_several_choices_are_assembled_separately() -> None:
    acc = fold(
        chunk(choices=[choice(0, content="a"), choice(1, content="x")]),
        chunk(choices=[choice(1, content="y", finish_reason="length"), choice(0, content="b", finish_reason="stop")]),
    )

    choices = acc.completion().choices
    assert [(c.index, c.message.content, c.finish_reason) for c in choices] == [(0, "ab", "stop"), (1, "xy", "length")]


def test_extra_text_fields_such_as_reasoning_are_concatenated_too() -> None:
    acc = fold(chunk(choices=[choice(reasoning="Let me ")]), chunk(choices=[choice(reasoning="think.", content="4")]))

    message = acc.completion().choices[0].message
    assert message.model_extra == {"reasoning": "Let me think."}
    assert message.content == "4"


def test_the_clamping_known_from_the_headers_stands_until_the_final_chunk_says_it() -> None:
    before = fold(chunk(choices=[choice(content="hi")]), max_tokens=1200, clamped=True)
    assert (before.max_tokens, before.clamped) == (1200, True)

    after = fold(
        chunk(choices=[choice(content="hi", finish_reason="length")]),
        chunk(wattfare={"costUsd": 0.01, "remainingUsd": 0, "maxTokens": 1100, "clamped": True}),
        max_tokens=1200,
        clamped=False,
    )
    assert (after.max_tokens, after.clamped) == (1100, True)
    info = after.completion().wattfare
    assert (info.max_tokens, info.clamped) == (1100, True)


def test_a_final_chunk_that_does_not_mention_clamping_keeps_what_the_headers_said() -> None:
    acc = fold(chunk(wattfare={"costUsd": 0.01, "remainingUsd": 4}), max_tokens=4096, clamped=False)

    assert (acc.max_tokens, acc.clamped) == (4096, False)


def test_a_final_chunk_saying_no_max_tokens_was_sent_clears_the_header_value() -> None:
    acc = fold(chunk(wattfare={"costUsd": 0.01, "maxTokens": None, "clamped": False}), max_tokens=4096)

    assert (acc.max_tokens, acc.clamped) == (None, False)

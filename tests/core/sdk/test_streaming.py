"""Chat streams on both twins: decoding, outcome, tool calls, errors mid-way, always closing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from wattfare import (
    APIStatusError,
    BudgetExceededError,
    NotConnectedError,
    StreamError,
    UpstreamError,
    UsageError,
)

pytestmark = pytest.mark.anyio

CHAT = "POST /api/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def open_stream(twin: Any, **params: Any) -> Any:
    return twin.client().user("alice").stream(model="openai/gpt-4o-mini", messages=HI, **params)


async def test_a_stream_request_asks_for_sse_with_usage_for_the_named_user(twin: Any) -> None:
    await twin.chunks(open_stream(twin, temperature=0.5))

    sent = twin.fake.last(CHAT)
    assert sent.headers["wattfare-user"] == "alice"
    assert sent.headers["accept"] == "text/event-stream"
    assert json.loads(sent.content) == {
        "model": "openai/gpt-4o-mini",
        "messages": HI,
        "temperature": 0.5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_chunks_arrive_in_order_with_the_usage_chunk_last(twin: Any) -> None:
    chunks = await twin.chunks(open_stream(twin))

    assert [c.choices[0].delta.content if c.choices else None for c in chunks] == ["", "Hel", "lo", None, None]
    assert chunks[-1].usage is not None
    assert chunks[-1].wattfare is not None


async def test_text_stream_yields_the_content_deltas(twin: Any) -> None:
    assert await twin.texts(open_stream(twin)) == ["Hel", "lo"]


async def test_the_stream_reports_usage_cost_budget_and_request_id(twin: Any) -> None:
    stream = open_stream(twin)
    await twin.chunks(stream)

    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens, stream.usage.total_tokens) == (12, 3, 15)
    assert stream.cost_usd == Decimal("0.000123")
    assert stream.remaining_usd == Decimal("9.5")
    assert stream.request_id == "req_stream"
    assert stream.finish_reason == "stop"


async def test_before_the_final_chunk_the_budget_is_the_headers(twin: Any) -> None:
    stream = open_stream(twin)
    chunks = await twin.take(stream, 1)

    assert len(chunks) == 1
    assert stream.remaining_usd == Decimal("9.500123")
    assert stream.cost_usd is None


async def test_a_clamped_stream_says_so_from_its_headers_then_from_its_final_chunk(twin: Any) -> None:
    f = twin.fake
    body = f.sse(
        f.chunk(role="assistant", content="Hel"),
        f.chunk(finish="length"),
        f.usage_chunk(maxTokens=1999, clamped=True),
    )
    f.script(CHAT, f.stream(body, headers={"Wattfare-Max-Tokens": "2000", "Wattfare-Clamped": "true"}))
    stream = open_stream(twin)

    await twin.take(stream, 1)
    assert (stream.max_tokens, stream.clamped) == (2000, True)

    f.script(CHAT, f.stream(body, headers={"Wattfare-Max-Tokens": "2000", "Wattfare-Clamped": "true"}))
    completion = await twin.final(open_stream(twin))
    assert (completion.wattfare.max_tokens, completion.wattfare.clamped) == (1999, True)
    assert completion.choices[0].finish_reason == "length"


async def test_a_stream_from_a_server_that_says_nothing_of_clamping_leaves_it_unknown(twin: Any) -> None:
    stream = open_stream(twin)
    await twin.chunks(stream)

    assert (stream.max_tokens, stream.clamped) == (None, None)


async def test_a_busy_budget_before_the_first_byte_is_retried(twin: Any) -> None:
    f = twin.fake
    busy = httpx.Response(
        429, json=f.envelope("budget_busy", "Busy."), headers={"Retry-After": "1", "Wattfare-Request-Id": "r"}
    )
    f.script(CHAT, busy)

    assert await twin.texts(open_stream(twin)) == ["Hel", "lo"]
    assert f.calls(CHAT) == 2
    assert twin.sleeps == [1.0]


async def test_get_final_completion_assembles_the_whole_answer(twin: Any) -> None:
    completion = await twin.final(open_stream(twin))

    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 15
    assert (completion.wattfare.cost_usd, completion.wattfare.request_id) == (Decimal("0.000123"), "req_stream")


async def test_streamed_tool_calls_are_assembled_by_index(twin: Any) -> None:
    f = twin.fake
    body = f.sse(
        f.chunk(
            role="assistant",
            tool_calls=[
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
            ],
        ),
        f.chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"q": '}}]),
        f.chunk(tool_calls=[{"index": 0, "function": {"arguments": '"wattfare"}'}}]),
        f.chunk(finish="tool_calls"),
        f.usage_chunk(),
    )
    f.script(CHAT, f.stream(body))

    completion = await twin.final(open_stream(twin, tools=[{"type": "function", "function": {"name": "lookup"}}]))

    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_1", "lookup", {"q": "wattfare"})
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_bytes_split_anywhere_by_the_network_decode_the_same(twin: Any) -> None:
    raw = twin.fake.hello_stream
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    twin.fake.script(CHAT, twin.fake.stream(twin.fake.Body(pieces)))

    assert await twin.texts(open_stream(twin)) == ["Hel", "lo"]


async def test_comment_lines_in_the_stream_are_ignored(twin: Any) -> None:
    f = twin.fake
    f.script(CHAT, f.stream(f.sse(": keep-alive\n\n", f.chunk("a"), ": still here\n\n", f.chunk("b"), f.usage_chunk())))

    assert await twin.texts(open_stream(twin)) == ["a", "b"]


async def test_an_error_event_mid_stream_raises_its_typed_error_after_the_text_before_it(twin: Any) -> None:
    f = twin.fake
    cut = f.envelope("budget_exceeded", "Cap reached mid-stream.", resetsAt="2026-12-01T00:00:00Z")
    f.script(CHAT, f.stream(f.sse(f.chunk("Hel"), f.chunk("lo"), cut)))

    texts, error = await twin.texts_until_error(open_stream(twin))

    assert texts == ["Hel", "lo"]
    assert isinstance(error, BudgetExceededError)
    assert (error.status_code, error.code, error.request_id) == (402, "budget_exceeded", "req_stream")
    assert error.resets_at is not None


async def test_an_upstream_failure_event_raises_upstream_error_and_no_final_completion(twin: Any) -> None:
    f = twin.fake
    f.script(CHAT, f.stream(f.sse(f.chunk("Hel"), f.envelope("upstream", "provider failed"))))

    with pytest.raises(UpstreamError, match="provider failed"):
        await twin.final(open_stream(twin))


async def test_an_error_event_with_an_unknown_code_is_an_api_status_error(twin: Any) -> None:
    f = twin.fake
    f.script(CHAT, f.stream(f.sse(f.chunk("a"), f.envelope("internal", "oops"))))

    with pytest.raises(APIStatusError) as info:
        await twin.chunks(open_stream(twin))

    assert (type(info.value), info.value.status_code, info.value.code) == (APIStatusError, 500, "internal")


async def test_a_connection_lost_mid_stream_raises_stream_error_and_is_not_retried(twin: Any) -> None:
    f = twin.fake
    first_half = f.sse(f.chunk("Hel"), done=False)
    body = f.Body([first_half], fail_with=httpx.RemoteProtocolError("peer closed connection"))
    f.script(CHAT, f.stream(body))

    with pytest.raises(StreamError) as info:
        await twin.chunks(open_stream(twin))

    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    assert info.value.request_id == "req_stream"
    assert f.calls(CHAT) == 1
    assert body.closed


async def test_a_stream_that_ends_without_done_is_a_stream_error(twin: Any) -> None:
    f = twin.fake
    f.script(CHAT, f.stream(f.sse(f.chunk("Hel"), done=False) + b'data: {"choices": [{"delta": {"content": "lo'))

    with pytest.raises(StreamError, match=r"\[DONE\]"):
        await twin.chunks(open_stream(twin))


async def test_an_unreadable_event_is_a_stream_error(twin: Any) -> None:
    f = twin.fake
    f.script(CHAT, f.stream(b"data: {not json}\n\n"))

    with pytest.raises(StreamError):
        await twin.chunks(open_stream(twin))


async def test_an_error_status_before_the_body_raises_on_entering_and_a_402_is_not_retried(twin: Any) -> None:
    twin.fake.script(CHAT, twin.fake.error(402, "not_connected"))

    with pytest.raises(NotConnectedError):
        await twin.enter(open_stream(twin))

    assert twin.fake.calls(CHAT) == 1


async def test_a_stream_is_retried_before_its_first_byte(twin: Any) -> None:
    f = twin.fake
    f.script(CHAT, f.error(503, "unavailable"), httpx.ConnectError("refused"))

    assert await twin.texts(open_stream(twin)) == ["Hel", "lo"]
    assert f.calls(CHAT) == 3
    assert twin.sleeps == [0.5, 1.0]


async def test_leaving_the_block_early_closes_the_response(twin: Any) -> None:
    body = twin.fake.Body([twin.fake.hello_stream])
    twin.fake.script(CHAT, twin.fake.stream(body))

    await twin.take(open_stream(twin), 1)

    assert body.closed


async def test_an_exception_inside_the_block_closes_the_response_and_propagates(twin: Any) -> None:
    body = twin.fake.Body([twin.fake.hello_stream])
    twin.fake.script(CHAT, twin.fake.stream(body))

    with pytest.raises(KeyError):
        await twin.fail_inside(open_stream(twin), KeyError("app bug"))

    assert body.closed


async def test_reading_a_stream_outside_its_block_is_a_usage_error(twin: Any) -> None:
    stream = open_stream(twin)
    with pytest.raises(UsageError):
        iter(stream) if twin.kind == "sync" else aiter(stream)

    await twin.take(stream, 1)
    with pytest.raises(UsageError):
        await twin.call(stream.get_final_completion())


async def test_the_final_completion_stays_readable_after_a_complete_stream(twin: Any) -> None:
    stream = open_stream(twin)
    await twin.chunks(stream)

    completion = await twin.call(stream.get_final_completion())

    assert completion.choices[0].message.content == "Hello"


async def test_a_model_handle_streams_for_its_user(twin: Any) -> None:
    stream = twin.client().user("carol").model("openai/gpt-4o-mini").stream(HI)

    assert await twin.texts(stream) == ["Hel", "lo"]
    assert twin.fake.last(CHAT).headers["wattfare-user"] == "carol"

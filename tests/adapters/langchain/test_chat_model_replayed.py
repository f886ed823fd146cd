"""ChatWattfare against recorded Wattfare traffic: what it sends, and what LangChain gets back.

Each test replays `cassettes/<test name>.yaml` (recorded from a real `wattfare serve` in test mode with
`WATTFARE_RECORD=1`); no server runs. A request that differs from the recording in method, path, body
or end user fails the test, so the request bodies asserted here are exactly what ChatWattfare sends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

import wattfare
from tests.adapters.langchain.conftest import Replay

pytestmark = pytest.mark.anyio


@tool
def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny in {city}."


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"Noon in {city}."


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="the question")
    punchline: str = Field(description="the answer")


class JokeDict(TypedDict):
    """A joke."""

    setup: str
    punchline: str


def _cost(message: BaseMessage) -> Decimal:
    return Decimal(message.response_metadata["wattfare"]["cost_usd"])


def _add(chunks: Sequence[AIMessage]) -> AIMessageChunk:
    # A chat model streams AIMessageChunks, though `bind_tools` types the stream it returns as AIMessages.
    full = chunks[0]
    assert isinstance(full, AIMessageChunk)
    for chunk in chunks[1:]:
        assert isinstance(chunk, AIMessageChunk)
        full = full + chunk
    return full


# ---------------------------------------------------------------- invoke and stream


def test_invoke_reports_usage_model_cost_and_budget_left(replay: Replay) -> None:
    with replay("invoke_metadata") as rec:
        reply = rec.llm("lc-invoke").invoke("Hello")
    assert isinstance(reply, AIMessage)
    assert reply.text.startswith("Sandbox reply to: Hello")
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    meta = reply.response_metadata
    assert meta["model_name"] == "openai/gpt-4o-mini"
    assert meta["model_provider"] == "wattfare"
    assert meta["finish_reason"] == "stop"
    assert meta["token_usage"]["prompt_tokens"] == usage["input_tokens"]
    cost = _cost(reply)
    assert cost > 0
    # A new test-mode user starts with a $10 cap: what is left is the cap minus this request.
    assert Decimal(meta["wattfare"]["remaining_usd"]) == Decimal(10) - cost
    assert meta["wattfare"]["request_id"].startswith("req_")
    assert json.dumps(meta)  # storable as is: money is a decimal string, never a Decimal or a float


def test_stream_carries_usage_model_and_cost_on_the_last_chunk_only(replay: Replay) -> None:
    with replay("stream_metadata") as rec:
        chunks = list(rec.llm("lc-stream").stream("Hello there"))
    assert len(chunks) > 3
    *body, last = chunks
    assert last.chunk_position == "last"
    assert all(chunk.usage_metadata is None and "model_name" not in chunk.response_metadata for chunk in body)
    assert last.usage_metadata is not None
    assert last.usage_metadata["output_tokens"] == len([chunk for chunk in body if chunk.text])
    full = _add(chunks)
    assert full.text.startswith("Sandbox reply to: Hello there")
    assert full.response_metadata["model_name"] == "openai/gpt-4o-mini"
    assert full.response_metadata["finish_reason"] == "stop"
    assert _cost(full) > 0
    assert rec.sent()[0]["stream"] is True
    assert rec.sent()[0]["stream_options"] == {"include_usage": True}


async def test_astream_and_ainvoke_match_their_sync_twins(replay: Replay) -> None:
    with replay("async_twins") as rec:
        llm = rec.llm("lc-async")
        reply = await llm.ainvoke("Hello async")
        chunks = [chunk async for chunk in llm.astream("Hello async")]
        await llm.aclose()
    full = _add(chunks)
    assert chunks[-1].chunk_position == "last"
    assert full.text == reply.text
    assert full.usage_metadata == reply.usage_metadata
    assert _cost(full) == _cost(reply)


def test_callbacks_receive_each_token_as_it_streams(replay: Replay) -> None:
    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
            assert isinstance(token, str)  # content blocks arrive only with output_version="v1"
            self.tokens.append(token)

    handler = Tokens()
    with replay("callback_tokens") as rec:
        reply = rec.llm("lc-callbacks", streaming=True).invoke("Count with me", config={"callbacks": [handler]})
    words = [token for token in handler.tokens if token]
    assert len(words) > 3
    assert "".join(handler.tokens) == reply.text
    assert reply.usage_metadata is not None
    assert rec.sent()[0]["stream"] is True


def test_batch_sends_one_request_per_input(replay: Replay) -> None:
    with replay("batch") as rec:
        replies = rec.llm("lc-batch").batch(["First", "Second"], config={"max_concurrency": 1})
    assert [reply.text.split(":")[1].split()[0] for reply in replies] == ["First", "Second"]
    assert len(rec.sent()) == 2


def test_sampling_params_stop_and_per_call_overrides_are_sent(replay: Replay) -> None:
    with replay("request_params") as rec:
        llm = rec.llm(
            "lc-params",
            temperature=0.2,
            top_p=0.9,
            seed=7,
            max_tokens=50,
            presence_penalty=0.1,
            frequency_penalty=0.3,
            stop=["never"],
            model_kwargs={"reasoning_effort": "low"},
        )
        llm.invoke("Hello filler words", temperature=0.5, stop=["filler"])
        reply = llm.invoke("Hello", model="anthropic/claude-sonnet-4")
    first, second = rec.sent()
    assert first == {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hello filler words"}],
        "reasoning_effort": "low",
        "temperature": 0.5,
        "max_tokens": 50,
        "top_p": 0.9,
        "frequency_penalty": 0.3,
        "presence_penalty": 0.1,
        "seed": 7,
        "stop": ["filler"],
    }
    assert second["model"] == "anthropic/claude-sonnet-4"
    assert second["stop"] == ["never"]
    assert reply.response_metadata["model_name"] == "anthropic/claude-sonnet-4"


def test_a_stop_sequence_cuts_the_answer_and_max_tokens_reports_length(replay: Replay) -> None:
    with replay("stop_and_length") as rec:
        llm = rec.llm("lc-stop")
        stopped = llm.invoke("Hello stop here", stop=["here"])
        cut = llm.invoke("Hello", max_tokens=2)
    assert stopped.text == "Sandbox reply to: Hello stop "
    assert cut.response_metadata["finish_reason"] == "length"
    assert cut.usage_metadata is not None
    assert cut.usage_metadata["output_tokens"] == 2


def test_n_choices_come_back_as_generations(replay: Replay) -> None:
    with replay("n_choices") as rec:
        result = rec.llm("lc-n", n=2).generate([[HumanMessage("Hello")]])
    generations = result.generations[0]
    assert len(generations) == 2
    assert generations[0].text != generations[1].text


def test_messages_of_every_role_reach_the_model_in_order(replay: Replay) -> None:
    history = [
        SystemMessage("Be brief."),
        HumanMessage("hello", name="ada"),
        AIMessage("hi there"),
        HumanMessage([{"type": "text", "text": "how are you"}]),
    ]
    with replay("roles") as rec:
        reply = rec.llm("lc-roles").invoke(history)
    assert reply.text.startswith("Sandbox reply to: how are you")
    assert rec.sent()[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "ada", "content": "hello"},
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "how are you"},
    ]


# ---------------------------------------------------------------- tools


def test_parallel_tool_calls_come_back_as_separate_calls_invoked_and_streamed(replay: Replay) -> None:
    question = "Use get_weather and get_time for Paris"
    with replay("parallel_tools") as rec:
        llm = rec.llm("lc-tools").bind_tools([get_weather, get_time])
        reply = llm.invoke(question)
        streamed = _add(list(llm.stream(question)))
    for message in (reply, streamed):
        assert [call["name"] for call in message.tool_calls] == ["get_weather", "get_time"]
        assert all(set(call["args"]) == {"city"} for call in message.tool_calls)
        assert len({call["id"] for call in message.tool_calls}) == 2
        assert message.response_metadata["finish_reason"] == "tool_calls"
    assert [call["id"] for call in streamed.tool_calls] == [call["id"] for call in reply.tool_calls]
    tools = rec.sent()[0]["tools"]
    assert [tool["function"]["name"] for tool in tools] == ["get_weather", "get_time"]
    assert tools[0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}


def test_parallel_tool_calls_false_and_a_forced_tool_are_sent_as_openai_fields(replay: Replay) -> None:
    question = "Use get_weather and get_time for Paris"
    with replay("tool_choice") as rec:
        llm = rec.llm("lc-tool-choice")
        one = llm.bind_tools([get_weather, get_time], parallel_tool_calls=False).invoke(question)
        forced = llm.bind_tools([get_weather, get_time], tool_choice="get_time").invoke("Hello")
        required = llm.bind_tools([get_weather], tool_choice="any").invoke("Hello")
    assert [call["name"] for call in one.tool_calls] == ["get_weather"]
    assert [call["name"] for call in forced.tool_calls] == ["get_time"]
    assert [call["name"] for call in required.tool_calls] == ["get_weather"]
    sent = rec.sent()
    assert sent[0]["parallel_tool_calls"] is False
    assert sent[1]["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert sent[2]["tool_choice"] == "required"


def test_a_tool_loop_sends_the_calls_and_results_back(replay: Replay) -> None:
    with replay("tool_loop") as rec:
        llm = rec.llm("lc-tool-loop").bind_tools([get_weather])
        history: list[BaseMessage] = [HumanMessage("In Rome?")]
        call_message = llm.invoke(history)
        assert isinstance(call_message, AIMessage)
        history.append(call_message)
        history.extend(get_weather.invoke(call) for call in call_message.tool_calls)
        answer = llm.invoke(history)
    assert answer.text.startswith("Sandbox read the tool result: Sunny in Rome.")
    assert not answer.tool_calls
    _, second = rec.sent()
    call_id = call_message.tool_calls[0]["id"]
    call = {"type": "function", "id": call_id, "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}
    assert second["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny in Rome."},
    ]


def test_an_error_tool_result_is_sent_as_a_tool_message(replay: Replay) -> None:
    history = [
        HumanMessage("What is the weather in Oslo?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {}, "id": "call_1", "type": "tool_call"}]),
        ToolMessage("Error: city is required", tool_call_id="call_1", status="error"),
    ]
    with replay("tool_error") as rec:
        answer = rec.llm("lc-tool-error").bind_tools([get_weather]).invoke(history)
    assert answer.text.startswith("Sandbox read the tool result: Error: city is required")
    tool_message = {"role": "tool", "tool_call_id": "call_1", "content": "Error: city is required"}
    assert rec.sent()[0]["messages"][-1] == tool_message


# ---------------------------------------------------------------- structured output


def test_structured_output_by_function_calling_forces_the_schema_tool(replay: Replay) -> None:
    with replay("structured_function_calling") as rec:
        llm = rec.llm("lc-structured-fc")
        joke = llm.with_structured_output(Joke).invoke("Tell me a joke about cats")
        as_dict = llm.with_structured_output(JokeDict).invoke("Tell me a joke about cats")
    assert isinstance(joke, Joke)
    assert set(as_dict) == {"setup", "punchline"}
    sent = rec.sent()[0]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Joke"}}
    assert sent["parallel_tool_calls"] is False


def test_structured_output_by_json_schema_sends_the_response_format(replay: Replay) -> None:
    with replay("structured_json_schema") as rec:
        llm = rec.llm("lc-structured-js")
        joke = llm.with_structured_output(Joke, method="json_schema", strict=True).invoke("Tell me a joke")
        streamed = list(llm.with_structured_output(Joke.model_json_schema(), method="json_schema").stream("A joke"))
    assert isinstance(joke, Joke)
    assert set(streamed[-1]) == {"setup", "punchline"}
    response_format = rec.sent()[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Joke"
    assert response_format["json_schema"]["strict"] is True
    assert set(response_format["json_schema"]["schema"]["required"]) == {"setup", "punchline"}


def test_structured_output_include_raw_returns_the_message_and_the_parsing_error(replay: Replay) -> None:
    with replay("structured_include_raw") as rec:
        llm = rec.llm("lc-structured-raw")
        ok = llm.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke")
        # JSON mode sends no schema: the sandbox answers with its own keys, which do not parse as a Joke.
        bad = llm.with_structured_output(Joke, method="json_mode", include_raw=True).invoke("Joke in JSON")
    assert isinstance(ok["parsed"], Joke)
    assert ok["parsing_error"] is None
    assert isinstance(ok["raw"], AIMessage)
    assert ok["raw"].usage_metadata is not None
    assert bad["parsed"] is None
    assert bad["parsing_error"] is not None
    assert json.loads(bad["raw"].text)  # it was JSON, just not a Joke
    assert rec.sent()[1]["response_format"] == {"type": "json_object"}


# ---------------------------------------------------------------- typed errors


def test_a_spent_cap_raises_budget_exceeded_unchanged(replay: Replay) -> None:
    with replay("budget_exceeded") as rec:
        wf = rec.wattfare()
        wf.create_session("lc-broke", monthly_usd="0.000001")
        llm = rec.llm("lc-broke")
        with pytest.raises(wattfare.BudgetExceededError) as invoked:
            llm.invoke("Hello")
        with pytest.raises(wattfare.BudgetExceededError):
            list(llm.stream("Hello"))
        wf.close()
    assert invoked.value.status_code == 402
    assert invoked.value.resets_at is not None


def test_a_revoked_user_raises_not_connected_unchanged(replay: Replay) -> None:
    with replay("not_connected") as rec:
        wf = rec.wattfare()
        llm = rec.llm("lc-revoked")
        llm.invoke("Hello")  # test mode connects a new user on their first request
        wf.user("lc-revoked").disconnect()
        with pytest.raises(wattfare.NotConnectedError) as raised:
            llm.invoke("Hello again")
        wf.close()
    assert raised.value.code == "not_connected"


def test_an_upstream_failure_mid_stream_raises_after_the_tokens_already_streamed(replay: Replay) -> None:
    chunks: list[AIMessageChunk] = []
    with replay("midstream_error") as rec:
        stream = rec.llm("lc-midstream").stream("Hello [sandbox:midstream_error]")
        with pytest.raises(wattfare.UpstreamError):  # noqa: PT012  (it arrives mid-iteration)
            for chunk in stream:
                chunks.append(chunk)
    assert "".join(chunk.text for chunk in chunks).startswith("Sandbox reply")

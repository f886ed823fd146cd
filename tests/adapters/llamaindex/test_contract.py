"""WattfareLLM's contract with LlamaIndex, replayed from cassettes recorded against a real Wattfare server.

LlamaIndex has no standard suite like langchain-tests; this covers what LangChain's does for a chat model
(invoke, stream, async, usage, tool calls, structured output, errors) in LlamaIndex's terms. Each test plays
`cassettes/<test name>.yaml`: the assertions on `target.sent(...)` read the request as it was recorded.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole, ToolCallBlock
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from tests.adapters.llamaindex.conftest import MODEL, Target
from wattfare import (
    AuthenticationError,
    BudgetExceededError,
    NotConnectedError,
    NotFoundError,
    UpstreamError,
)
from wattfare_llamaindex import WattfareLLM


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"It is sunny in {city}."


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = [FunctionTool.from_defaults(get_weather), FunctionTool.from_defaults(add)]


class Person(BaseModel):
    """A person named in a text."""

    name: str
    age: int


def body(target: Target, index: int = -1) -> dict[str, Any]:
    """The JSON body of a recorded request."""
    sent = target.sent(index).body
    assert isinstance(sent, bytes)  # vcrpy's untyped `body` also covers file and iterator bodies; httpx sends bytes
    return json.loads(sent)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def assert_accounted(response: ChatResponse) -> None:
    """Usage where LlamaIndex reads it, and Wattfare's cost next to it."""
    assert response.raw is not None
    usage = response.raw["usage"]
    extra = response.additional_kwargs
    assert usage["prompt_tokens"] == extra["prompt_tokens"] > 0
    assert usage["completion_tokens"] == extra["completion_tokens"] > 0
    assert extra["total_tokens"] == extra["prompt_tokens"] + extra["completion_tokens"]
    assert isinstance(extra["cost_usd"], Decimal)
    assert extra["cost_usd"] > 0
    assert Decimal(response.raw["wattfare"]["cost_usd"]) == extra["cost_usd"]
    assert isinstance(extra["remaining_usd"], Decimal)
    assert extra["request_id"].startswith("req_")


# ---------------------------------------------------------------- the class and its metadata


def test_wattfare_llm_is_a_llamaindex_function_calling_llm() -> None:
    assert BaseLLM.__name__ in [base.__name__ for base in WattfareLLM.__mro__]
    assert issubclass(WattfareLLM, FunctionCallingLLM)
    assert WattfareLLM.class_name() == "WattfareLLM"


def test_metadata_comes_from_wattfares_model_list_read_once(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-metadata")
    metadata = llm.metadata
    assert metadata.model_name == MODEL
    assert metadata.context_window == 128_000
    assert metadata.num_output == 16_384
    assert metadata.is_chat_model is True
    assert metadata.is_function_calling_model is True
    # Read again, and by a per-user copy: the cassette holds one GET /models and plays it once only.
    assert llm.metadata == llm.for_user("li-metadata-2").metadata
    assert wattfare_target.exchanges == 1
    assert wattfare_target.sent().path == "/api/v1/models"


# ---------------------------------------------------------------- chat and complete


def test_chat_answers_with_usage_and_cost(wattfare_target: Target) -> None:
    response = wattfare_target.llm("li-chat").chat(user("Say hello"))
    assert response.message.role == MessageRole.ASSISTANT
    assert (response.message.content or "").startswith("Sandbox reply to: Say hello")
    assert_accounted(response)


def test_chat_sends_every_turn_and_the_llms_parameters(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-turns", temperature=0.2, max_tokens=40, additional_kwargs={"seed": 7})
    llm.chat(
        [
            ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
            ChatMessage(role=MessageRole.USER, content="Hi"),
            ChatMessage(role=MessageRole.ASSISTANT, content="Hello!"),
            ChatMessage(role=MessageRole.USER, content="How are you?"),
        ],
        top_p=0.5,
    )
    sent = body(wattfare_target)
    assert sent["model"] == MODEL
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]
    assert (sent["temperature"], sent["max_tokens"], sent["seed"], sent["top_p"]) == (0.2, 40, 7, 0.5)
    assert "stream" not in sent
    assert wattfare_target.sent().headers["wattfare-user"] == "li-turns"


def test_complete_is_a_chat_completion_never_the_legacy_endpoint(wattfare_target: Target) -> None:
    response = wattfare_target.llm("li-complete").complete("Say hi")
    assert response.text.startswith("Sandbox reply to: Say hi")
    assert wattfare_target.sent().path == "/api/v1/chat/completions"
    assert body(wattfare_target)["messages"] == [{"role": "user", "content": "Say hi"}]
    assert response.raw is not None
    assert response.raw["usage"]["completion_tokens"] > 0
    assert response.additional_kwargs["cost_usd"] > 0


def test_stream_chat_yields_deltas_that_add_up_to_the_message(wattfare_target: Target) -> None:
    responses = list(wattfare_target.llm("li-stream").stream_chat(user("Stream to me")))
    assert len(responses) > 5
    text = ""
    for response in responses:
        text += response.delta or ""
        # Each response carries the whole message so far: LlamaIndex's agents keep only the last.
        assert (response.message.content or "") == text
    assert text.startswith("Sandbox reply to: Stream to me")
    assert_accounted(responses[-1])
    sent = body(wattfare_target)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_stream_complete_yields_text_deltas(wattfare_target: Target) -> None:
    responses = list(wattfare_target.llm("li-stream-complete").stream_complete("Stream a completion"))
    assert "".join(response.delta or "" for response in responses) == responses[-1].text
    assert responses[-1].text.startswith("Sandbox reply to: Stream a completion")
    assert responses[-1].additional_kwargs["cost_usd"] > 0
    assert wattfare_target.sent().path == "/api/v1/chat/completions"


@pytest.mark.anyio
async def test_achat_answers_with_usage_and_cost(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-achat")
    try:
        response = await llm.achat(user("Say hello, async"))
    finally:
        await llm.aclose()
    assert (response.message.content or "").startswith("Sandbox reply to: Say hello, async")
    assert_accounted(response)


@pytest.mark.anyio
async def test_acomplete_is_a_chat_completion(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-acomplete")
    try:
        response = await llm.acomplete("Say hi, async")
    finally:
        await llm.aclose()
    assert response.text.startswith("Sandbox reply to: Say hi, async")
    assert body(wattfare_target)["messages"] == [{"role": "user", "content": "Say hi, async"}]


@pytest.mark.anyio
async def test_astream_chat_yields_deltas_that_add_up_to_the_message(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-astream")
    try:
        responses = [response async for response in await llm.astream_chat(user("Stream to me, async"))]
    finally:
        await llm.aclose()
    text = ""
    for response in responses:
        text += response.delta or ""
        assert (response.message.content or "") == text
    assert text.startswith("Sandbox reply to: Stream to me, async")
    assert_accounted(responses[-1])


@pytest.mark.anyio
async def test_astream_complete_yields_text_deltas(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-astream-complete")
    try:
        responses = [response async for response in await llm.astream_complete("Stream a completion, async")]
    finally:
        await llm.aclose()
    assert "".join(response.delta or "" for response in responses) == responses[-1].text
    assert responses[-1].text.startswith("Sandbox reply to: Stream a completion, async")


# ---------------------------------------------------------------- usage and events


def test_token_counting_handler_counts_wattfares_usage(wattfare_target: Target) -> None:
    counter = TokenCountingHandler()
    llm = wattfare_target.llm("li-counting", callback_manager=CallbackManager([counter]))
    response = llm.chat(user("Count my tokens"))
    assert response.raw is not None
    assert counter.prompt_llm_token_count == response.raw["usage"]["prompt_tokens"]
    assert counter.completion_llm_token_count == response.raw["usage"]["completion_tokens"]


def test_for_user_charges_another_user_with_the_same_settings(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-first", temperature=0.3)
    other = llm.for_user("li-second")
    other.chat(user("Who pays?"))
    assert (llm.user_id, other.user_id) == ("li-first", "li-second")
    assert (other.model, other.temperature) == (MODEL, 0.3)
    assert wattfare_target.sent().headers["wattfare-user"] == "li-second"


# ---------------------------------------------------------------- tool calling


def test_chat_with_tools_returns_the_call_as_a_tool_selection(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-tools")
    response = llm.chat_with_tools(TOOLS, user_msg="What is the weather in Paris? Use get_weather.")
    [selection] = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "get_weather"
    assert selection.tool_id.startswith("call_")
    assert isinstance(selection.tool_kwargs["city"], str)
    # Where LlamaIndex looks: a ToolCallBlock, and the OpenAI shape in additional_kwargs.
    [block] = [block for block in response.message.blocks if isinstance(block, ToolCallBlock)]
    assert block.tool_call_id == selection.tool_id
    assert response.message.additional_kwargs["tool_calls"][0]["function"]["name"] == "get_weather"
    sent = body(wattfare_target)
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_weather", "add"]
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", False)
    assert_accounted(response)


def test_parallel_tool_calls_come_back_together_when_allowed(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-parallel")
    response = llm.chat_with_tools(
        TOOLS, user_msg="Use get_weather for Rome and add for the numbers.", allow_parallel_tool_calls=True
    )
    selections = llm.get_tool_calls_from_response(response)
    assert [selection.tool_name for selection in selections] == ["get_weather", "add"]
    assert len({selection.tool_id for selection in selections}) == 2
    assert "parallel_tool_calls" not in body(wattfare_target)


def test_tool_required_forces_a_tool_call(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-required")
    response = llm.chat_with_tools(TOOLS, user_msg="Just chat with me.", tool_required=True)
    assert [selection.tool_name for selection in llm.get_tool_calls_from_response(response)] == ["get_weather"]
    assert body(wattfare_target)["tool_choice"] == "required"


def test_a_named_tool_choice_forces_that_tool(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-named")
    response = llm.chat_with_tools(TOOLS, user_msg="What is the weather in Oslo?", tool_choice="add")
    [selection] = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "add"
    assert selection.tool_kwargs == {"a": 1, "b": 1}
    assert body(wattfare_target)["tool_choice"] == {"type": "function", "function": {"name": "add"}}


def test_a_plain_answer_has_no_tool_calls(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-no-tools")
    response = llm.chat(user("No tools here"))
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="at least one tool call"):
        llm.get_tool_calls_from_response(response)


def test_tool_results_go_back_as_tool_messages(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-round-trip")
    question = ChatMessage(role=MessageRole.USER, content="Weather in Lima? Use get_weather.")
    called = llm.chat_with_tools(TOOLS, chat_history=[question])
    [selection] = llm.get_tool_calls_from_response(called)
    result = ChatMessage(
        role=MessageRole.TOOL, content="It is sunny in Lima.", additional_kwargs={"tool_call_id": selection.tool_id}
    )
    answer = llm.chat_with_tools(TOOLS, chat_history=[question, called.message, result])
    assert (answer.message.content or "").startswith("Sandbox read the tool result: It is sunny in Lima.")
    sent = body(wattfare_target)["messages"]
    arguments = called.message.additional_kwargs["tool_calls"][0]["function"]["arguments"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": selection.tool_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        ],
    }
    assert sent[2] == {"role": "tool", "tool_call_id": selection.tool_id, "content": "It is sunny in Lima."}


def test_predict_and_call_runs_the_chosen_tool(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-predict-and-call")
    response = llm.predict_and_call([TOOLS[1]], user_msg="Please add two numbers.")
    assert response.response == "2"  # the sandbox's arguments for `add` are a=1, b=1
    assert response.sources[0].tool_name == "add"


@pytest.mark.anyio
async def test_astream_chat_with_tools_streams_partial_calls_then_the_whole_call(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-astream-tools")
    try:
        stream = await llm.astream_chat_with_tools(TOOLS, user_msg="Weather in Quito? Use get_weather.")
        responses = [response async for response in stream]
    finally:
        await llm.aclose()
    # Agents read every streamed response: partial arguments must parse (leniently), never raise.
    seen = [llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) for response in responses]
    [final] = seen[-1]
    whole = json.loads(responses[-1].message.additional_kwargs["tool_calls"][0]["function"]["arguments"])
    assert final.tool_name == "get_weather"
    assert final.tool_kwargs == whole
    assert any(calls and calls[0].tool_kwargs != whole for calls in seen), "no partial call was ever streamed"
    assert_accounted(responses[-1])


# ---------------------------------------------------------------- structured output


def test_structured_predict_returns_the_model_through_a_forced_tool_call(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-structured")
    person = llm.structured_predict(Person, PromptTemplate("Extract the person: {text}"), text="Alice is 30.")
    assert isinstance(person, Person)
    sent = body(wattfare_target)
    assert sent["tool_choice"] == "required"
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["Person"]


@pytest.mark.anyio
async def test_astructured_predict_returns_the_model(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-astructured")
    try:
        person = await llm.astructured_predict(Person, PromptTemplate("Extract: {text}"), text="Bob is 41.")
    finally:
        await llm.aclose()
    assert isinstance(person, Person)


def test_as_structured_llm_answers_with_the_models_json(wattfare_target: Target) -> None:
    structured = wattfare_target.llm("li-as-structured").as_structured_llm(Person)
    response = structured.chat(user("Carol is 25."))
    assert isinstance(response.raw, Person)
    assert Person.model_validate_json(response.message.content or "") == response.raw


def test_stream_structured_predict_ends_with_the_whole_model(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-stream-structured")
    partials = list(llm.stream_structured_predict(Person, PromptTemplate("Extract: {text}"), text="Dan is 52."))
    assert len(partials) > 1
    assert isinstance(partials[-1], Person)
    assert body(wattfare_target)["stream"] is True


# ---------------------------------------------------------------- errors pass through, typed, never retried


def test_a_spent_cap_raises_budget_exceeded_once(wattfare_target: Target) -> None:
    wattfare_target.wattfare().create_session("li-broke", monthly_usd="0.0000001")
    with pytest.raises(BudgetExceededError) as caught:
        wattfare_target.llm("li-broke").chat(user("Anything"))
    assert caught.value.resets_at is not None
    # The cassette holds the session and one refused chat; a retry would find nothing to replay.
    assert wattfare_target.exchanges == 2


@pytest.mark.anyio
async def test_a_spent_cap_raises_budget_exceeded_from_an_async_stream(wattfare_target: Target) -> None:
    wattfare_target.wattfare().create_session("li-broke-stream", monthly_usd="0.0000001")
    llm = wattfare_target.llm("li-broke-stream")
    try:
        stream = await llm.astream_chat(user("Anything"))
        with pytest.raises(BudgetExceededError):
            await anext(stream)
    finally:
        await llm.aclose()
    assert wattfare_target.exchanges == 2


def test_a_disconnected_user_raises_not_connected(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-gone")
    llm.chat(user("Before"))
    wattfare_target.wattfare().user("li-gone").disconnect()
    with pytest.raises(NotConnectedError):
        llm.chat(user("After"))


def test_an_upstream_failure_raises_upstream_error(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-upstream", max_retries=0)
    with pytest.raises(UpstreamError):
        llm.chat(user("Fail [sandbox:upstream_error]"))


def test_a_stream_failing_midway_raises_after_the_text_so_far(wattfare_target: Target) -> None:
    deltas: list[str] = []

    def read_all() -> None:
        for response in wattfare_target.llm("li-midstream").stream_chat(user("Go [sandbox:midstream_error]")):
            deltas.append(response.delta or "")

    with pytest.raises(UpstreamError, match="mid-stream"):
        read_all()
    assert "".join(deltas) == "Sandbox reply to: "


def test_a_wrong_key_raises_authentication_error(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-wrong-key", secret_key="sk_test_not_a_real_key", max_retries=0)
    with pytest.raises(AuthenticationError):
        llm.chat(user("Hello"))


def test_an_unknown_model_raises_not_found(wattfare_target: Target) -> None:
    llm = wattfare_target.llm("li-unknown-model", model="nobody/no-such-model")
    with pytest.raises(NotFoundError):
        llm.chat(user("Hello"))

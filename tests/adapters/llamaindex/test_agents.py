"""LlamaIndex's agents on WattfareLLM, against a real `wattfare serve` process in test mode.

The sandbox upstream is not intelligent: it calls the tools the user's message names, with arguments built
from their schemas, and answers a tool result by quoting it. So these tests prove wiring (what LlamaIndex
sends, what it gets back and how it reads it, that each call is metered); the ones that need a model to
reason run only with `WATTFARE_LIVE=1`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import pytest
from llama_index.core.agent.workflow import (
    AgentOutput,
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ReActAgent,
    ToolCall,
    ToolCallResult,
)
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from tests.adapters.llamaindex.conftest import MODEL
from tests.adapters.llamaindex.request_log import RequestLog
from tests.support.adapter_fixtures import LIVE, live_env
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare import BudgetExceededError, NotConnectedError, Wattfare
from wattfare_llamaindex import WattfareLLM

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("llamaindex-server")]

REACT_NEEDS_A_MODEL = (
    "a ReAct tool call needs a model that writes 'Thought/Action/Action Input' lines from the ReAct prompt; the"
    " sandbox only echoes the user's text (whitespace collapsed), so it can never emit one: run with WATTFARE_LIVE=1"
)
ANSWER_NEEDS_A_MODEL = (
    "checking that the agent's final answer is right needs a model that reads the tool result; the sandbox only"
    " quotes it: run with WATTFARE_LIVE=1"
)


@dataclass
class Weather:
    """Two tools that record their calls."""

    calls: list[tuple[str, object]]

    def get_weather(self, city: str) -> str:
        """The current weather in a city."""
        self.calls.append(("get_weather", city))
        return f"It is 21 degrees Celsius and sunny in {city}."

    def to_fahrenheit(self, celsius: float) -> float:
        """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
        self.calls.append(("to_fahrenheit", celsius))
        return celsius * 9 / 5 + 32


@pytest.fixture
def weather() -> Weather:
    return Weather(calls=[])


@asynccontextmanager
async def wattfare_llm(
    server: ServerProcess, user_id: str | None = None
) -> AsyncIterator[tuple[WattfareLLM, RequestLog]]:
    """A WattfareLLM for a fresh user on `server`, and the log of what it sent."""
    log = RequestLog()
    async with log.async_client() as http:
        llm = WattfareLLM(
            model=MODEL,
            user_id=user_id or f"agent-{uuid.uuid4().hex[:10]}",
            secret_key=server.secret,
            base_url=server.base_url,
            async_http_client=http,
        )
        try:
            yield llm, log
        finally:
            llm.close()


@pytest.fixture
def wattfare(llamaindex_server: ServerProcess) -> Iterator[Wattfare]:
    with Wattfare(llamaindex_server.secret, llamaindex_server.base_url) as client:
        yield client


# ---------------------------------------------------------------- FunctionAgent and AgentWorkflow


async def test_function_agent_completes_a_tool_round_trip(llamaindex_server: ServerProcess, weather: Weather) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, log):
        agent = FunctionAgent(tools=[weather.get_weather, weather.to_fahrenheit], llm=llm)
        handler = agent.run("What is the weather in Paris? Use get_weather.")
        events = [event async for event in handler.stream_events()]
        result = await handler
    [(tool, city)] = weather.calls
    assert tool == "get_weather"
    assert isinstance(city, str)
    [called] = [event for event in events if isinstance(event, ToolCallResult)]
    assert called.tool_output.content == f"It is 21 degrees Celsius and sunny in {city}."
    assert str(result).startswith(f"Sandbox read the tool result: It is 21 degrees Celsius and sunny in {city}.")
    first, second = log.chats()
    assert [tool["function"]["name"] for tool in first["tools"]] == ["get_weather", "to_fahrenheit"]
    assert first["stream"] is True  # FunctionAgent streams by default: astream_chat_with_tools
    assert "parallel_tool_calls" not in first  # FunctionAgent allows parallel calls
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == called.tool_id
    assert second["messages"][-2]["tool_calls"][0]["id"] == called.tool_id


async def test_function_agent_without_streaming_completes_a_tool_round_trip(
    llamaindex_server: ServerProcess, weather: Weather
) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, log):
        agent = FunctionAgent(tools=[weather.get_weather], llm=llm, streaming=False)
        result = await agent.run("Weather in Oslo? Use get_weather.")
    assert [tool for tool, _ in weather.calls] == ["get_weather"]
    assert str(result).startswith("Sandbox read the tool result: It is 21 degrees")
    assert [chat.get("stream") for chat in log.chats()] == [None, None]


async def test_function_agent_calls_both_tools_in_parallel_when_both_are_named(
    llamaindex_server: ServerProcess, weather: Weather
) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, log):
        agent = FunctionAgent(tools=[weather.get_weather, weather.to_fahrenheit], llm=llm)
        await agent.run("Use get_weather for Rome, then to_fahrenheit.")
    assert sorted(tool for tool, _ in weather.calls) == ["get_weather", "to_fahrenheit"]
    assert len(log.chats()) == 2  # one turn calling both tools, one answering


async def test_agent_workflow_takes_the_function_calling_path_not_react(
    llamaindex_server: ServerProcess, weather: Weather
) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, log):
        workflow = AgentWorkflow.from_tools_or_functions([weather.get_weather], llm=llm)
        [agent] = workflow.agents.values()
        assert type(agent) is FunctionAgent
        result = await workflow.run(user_msg="Weather in Lima? Use get_weather.")
    assert [tool for tool, _ in weather.calls] == ["get_weather"]
    assert str(result).startswith("Sandbox read the tool result:")
    first = log.chats()[0]
    assert [tool["function"]["name"] for tool in first["tools"]] == ["get_weather"]
    assert all("Action Input" not in (message["content"] or "") for message in first["messages"])


# ---------------------------------------------------------------- ReActAgent


async def test_react_agent_sends_its_prompt_and_parses_the_models_answer(
    llamaindex_server: ServerProcess, weather: Weather
) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, log):
        agent = ReActAgent(tools=[weather.get_weather], llm=llm)
        # The sandbox answers "Sandbox reply to: <the user's text>", so the answer is in ReAct's format.
        result = await agent.run("Thought: I can answer without tools. Answer: forty-two")
    [chat] = log.chats()
    system, question = chat["messages"][0], chat["messages"][-1]
    # The prompt reached the model: ReAct's header, with the tool's name and schema, and no native tools.
    assert system["role"] == "system"
    assert "get_weather" in system["content"]
    assert "Action Input" in system["content"]
    assert question == {"role": "user", "content": "Thought: I can answer without tools. Answer: forty-two"}
    assert "tools" not in chat
    # Its output was parsed: the answer is what follows "Answer:", without the model's thought.
    assert str(result).startswith("forty-two")
    assert "Thought" not in str(result)
    assert weather.calls == []


@pytest.mark.skipif(not LIVE, reason=REACT_NEEDS_A_MODEL)
async def test_react_agent_calls_a_tool_from_its_text_prompt(
    live_llamaindex_server: ServerProcess, weather: Weather
) -> None:
    async with wattfare_llm(live_llamaindex_server) as (llm, _):
        agent = ReActAgent(tools=[weather.get_weather], llm=llm)
        result = await agent.run("What is the weather in Paris right now? Use the get_weather tool.")
    assert [tool for tool, _ in weather.calls] == ["get_weather"]
    assert "21" in str(result)


@pytest.mark.skipif(not LIVE, reason=ANSWER_NEEDS_A_MODEL)
async def test_function_agent_answers_from_the_tool_results(
    live_llamaindex_server: ServerProcess, weather: Weather
) -> None:
    async with wattfare_llm(live_llamaindex_server) as (llm, _):
        agent = FunctionAgent(tools=[weather.get_weather, weather.to_fahrenheit], llm=llm)
        result = await agent.run("How warm is it in Paris, in Fahrenheit? Use the tools.")
    assert {tool for tool, _ in weather.calls} == {"get_weather", "to_fahrenheit"}
    assert "69.8" in str(result) or "70" in str(result)


# ---------------------------------------------------------------- streaming and metering


async def test_agent_events_arrive_while_the_tokens_stream(llamaindex_server: ServerProcess, weather: Weather) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, _):
        agent = FunctionAgent(tools=[weather.get_weather], llm=llm)
        # [sandbox:slow] puts 50 ms between streamed chunks, for tool calls and text alike.
        handler = agent.run("Weather in Kyoto? Use get_weather. [sandbox:slow]")
        texts: list[tuple[float, str]] = []
        streamed_calls = 0
        streamed_before_the_call: int | None = None
        async for event in handler.stream_events():
            if isinstance(event, AgentStream):
                if event.delta:
                    texts.append((time.monotonic(), event.delta))
                streamed_calls += bool(event.tool_calls)
            elif isinstance(event, ToolCall) and streamed_before_the_call is None:
                streamed_before_the_call = streamed_calls
        result = await handler
        finished = time.monotonic()
    # The tool call was seen growing, fragment by fragment, before the agent ran it.
    assert streamed_before_the_call is not None
    assert streamed_before_the_call > 2
    assert "".join(delta for _, delta in texts) == str(result)
    assert len(texts) > 10
    # Tokens 50 ms apart must reach the caller spread out as they stream, not in one batch at the end.
    assert texts[-1][0] - texts[0][0] > 0.2 * (len(texts) - 1) * 0.05
    assert finished - texts[0][0] > 0.25


async def test_every_agent_call_is_metered(
    llamaindex_server: ServerProcess, wattfare: Wattfare, weather: Weather
) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, log):
        agent = FunctionAgent(tools=[weather.get_weather], llm=llm)
        handler = agent.run("Weather in Nairobi? Use get_weather.")
        outputs = [event async for event in handler.stream_events() if isinstance(event, AgentOutput)]
        await handler
    raws = [output.raw for output in outputs if output.raw is not None]
    assert len(raws) == len(outputs)  # every agent step carries the provider's answer
    costs = [Decimal(raw["wattfare"]["cost_usd"]) for raw in raws]
    tokens = [raw["usage"]["prompt_tokens"] + raw["usage"]["completion_tokens"] for raw in raws]
    assert len(costs) == len(log.chats()) == 2
    [row] = wattfare.usage(llm.user_id).data
    assert row.model == MODEL
    assert row.requests == 2
    assert row.cost_usd == sum(costs)
    assert row.prompt_tokens + row.completion_tokens == sum(tokens)
    assert llm.user_id is not None
    assert wattfare.user(llm.user_id).status().spent_usd == sum(costs)


async def test_a_spent_cap_stops_the_agent_with_the_typed_error_and_no_retry(
    llamaindex_server: ServerProcess, wattfare: Wattfare, weather: Weather
) -> None:
    user_id = f"agent-broke-{uuid.uuid4().hex[:8]}"
    wattfare.create_session(user_id, monthly_usd="0.0000001")
    async with wattfare_llm(llamaindex_server, user_id) as (llm, log):
        agent = FunctionAgent(tools=[weather.get_weather], llm=llm)
        with pytest.raises(BudgetExceededError):
            await agent.run("Weather in Paris? Use get_weather.")
    assert len(log.chats()) == 1
    assert weather.calls == []


async def test_a_revoked_user_stops_the_agent_with_not_connected(
    llamaindex_server: ServerProcess, wattfare: Wattfare, weather: Weather
) -> None:
    async with wattfare_llm(llamaindex_server) as (llm, log):
        await llm.achat([ChatMessage(role=MessageRole.USER, content="Hello")])  # test mode connects the user
        assert llm.user_id is not None
        wattfare.user(llm.user_id).disconnect()
        agent = FunctionAgent(tools=[weather.get_weather], llm=llm)
        with pytest.raises(NotConnectedError):
            await agent.run("Weather in Paris? Use get_weather.")
    assert len(log.chats()) == 2  # the hello, then one refused attempt
    assert weather.calls == []


# ---------------------------------------------------------------- a live server, for the tests above that need one


@pytest.fixture(scope="module")
def live_llamaindex_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose test keys are served by the real upstream (only with WATTFARE_LIVE=1)."""
    with wattfare_process(tmp_path_factory.mktemp("wattfare-llamaindex-live"), env=live_env()) as server:
        yield server

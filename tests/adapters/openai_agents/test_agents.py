"""Agents SDK runs on Wattfare: tools, structured output and streaming, each charged to its end user."""

from __future__ import annotations

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from openai.types.responses import ResponseTextDeltaEvent
from pydantic import BaseModel

from tests.adapters.openai_agents.conftest import MODEL, charged_requests, config_for
from tests.adapters.openai_request_log import RequestLog
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_agents import WattfareModelProvider, wattfare_model

pytestmark = [pytest.mark.xdist_group("openai_agents"), pytest.mark.anyio]


class City(BaseModel):
    name: str
    population: int


async def test_an_agent_calls_its_tool_and_both_requests_are_charged_to_the_user(
    provider: WattfareModelProvider, wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    agent = Agent(name="Assistant", model=MODEL, tools=[get_weather])
    result = await Runner.run(agent, "What is the weather in Paris?", run_config=config_for(provider, user_id))

    assert cities == ["Paris"]  # the sandbox filled the tool's argument from the prompt
    assert str(result.final_output).startswith("Sandbox read the tool result: Sunny in Paris")
    assert [r.app_user_id for r in request_log.completions()] == [user_id, user_id]
    assert charged_requests(wattfare, user_id) == 2


async def test_structured_output_is_validated_into_the_output_type(
    provider: WattfareModelProvider, wattfare: Wattfare, user_id: str
) -> None:
    agent = Agent(name="Describer", model=MODEL, output_type=City)

    result = await Runner.run(agent, "Describe 'Paris', population 2100000.", run_config=config_for(provider, user_id))

    assert result.final_output == City(name="Paris", population=2100000)
    assert charged_requests(wattfare, user_id) == 1


async def test_a_streamed_run_arrives_in_pieces_and_is_charged_once(
    provider: WattfareModelProvider, wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    agent = Agent(name="Assistant", model=MODEL)

    result = Runner.run_streamed(agent, "Say hi", run_config=config_for(provider, user_id))
    pieces = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    ]

    assert len(pieces) > 1
    assert "".join(pieces) == result.final_output
    assert str(result.final_output).startswith("Sandbox reply to: Say hi")
    assert len(request_log.completions(user_id)) == 1
    assert charged_requests(wattfare, user_id) == 1


async def test_each_user_pays_for_their_own_runs_through_one_provider(
    provider: WattfareModelProvider, wattfare: Wattfare, user_id: str
) -> None:
    other = f"{user_id}_other"
    agent = Agent(name="Assistant", model=MODEL)

    await Runner.run(agent, "Hi", run_config=config_for(provider, user_id))
    await Runner.run(agent, "Hi", run_config=config_for(provider, other))
    await Runner.run(agent, "Hi again", run_config=config_for(provider, other))

    assert (charged_requests(wattfare, user_id), charged_requests(wattfare, other)) == (1, 2)


async def test_wattfare_model_puts_one_users_model_on_the_agent_itself(
    wattfare_server: ServerProcess, wattfare: Wattfare, user_id: str
) -> None:
    model = wattfare_model(MODEL, user_id=user_id, api_key=wattfare_server.secret, base_url=wattfare_server.base_url)
    agent = Agent(name="Assistant", model=model)

    result = await Runner.run(agent, "Hello", run_config=RunConfig(tracing_disabled=True))
    await model._client.close()  # the pool it opened (a process-long model would keep it)

    assert str(result.final_output).startswith("Sandbox reply to: Hello")
    assert charged_requests(wattfare, user_id) == 1

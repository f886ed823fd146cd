"""Pydantic AI agents on Wattfare: tools, structured output and streaming, each charged to its end user."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, ToolOutput
from pydantic_ai.models.openai import OpenAIChatModel

from tests.adapters.openai_request_log import RequestLog
from tests.adapters.pydantic_ai.conftest import MODEL, charged_requests
from wattfare import Wattfare
from wattfare_pydantic_ai import WattfareProvider

pytestmark = [pytest.mark.xdist_group("pydantic_ai"), pytest.mark.anyio]


class City(BaseModel):
    name: str
    population: int


def model_for(provider: WattfareProvider, user_id: str) -> OpenAIChatModel:
    return OpenAIChatModel(MODEL, provider=provider.for_user(user_id))


async def test_an_agent_calls_its_tool_and_both_requests_are_charged_to_the_user(
    provider: WattfareProvider, wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    cities: list[str] = []
    agent = Agent(model_for(provider, user_id))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    result = await agent.run("What is the weather in Paris?")

    assert cities == ["Paris"]  # the sandbox filled the tool's argument from the prompt
    assert result.output.startswith("Sandbox read the tool result: Sunny in Paris")
    assert [r.app_user_id for r in request_log.completions()] == [user_id, user_id]
    assert charged_requests(wattfare, user_id) == 2
    assert result.usage.requests == 2


# `PromptedOutput` is left out: it needs a model that follows the JSON instructions, which the sandbox does not.
@pytest.mark.parametrize("output", [City, ToolOutput(City), NativeOutput(City)], ids=["default", "tool", "native"])
async def test_structured_output_is_validated_into_the_output_type(
    output: object, provider: WattfareProvider, wattfare: Wattfare, user_id: str
) -> None:
    agent = Agent(model_for(provider, user_id), output_type=output)  # pyright: ignore[reportCallIssue, reportArgumentType]

    result = await agent.run("Describe 'Paris', population 2100000.")

    assert result.output == City(name="Paris", population=2100000)
    assert charged_requests(wattfare, user_id) == 1


async def test_a_streamed_answer_arrives_in_pieces_and_is_charged_once(
    provider: WattfareProvider, wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    agent = Agent(model_for(provider, user_id))

    async with agent.run_stream("Say hi") as streamed:
        pieces = [piece async for piece in streamed.stream_text(delta=True, debounce_by=None)]
    output = await streamed.get_output()

    assert len(pieces) > 1
    assert "".join(pieces) == output
    assert output.startswith("Sandbox reply to: Say hi")
    assert len(request_log.completions(user_id)) == 1
    assert charged_requests(wattfare, user_id) == 1


async def test_each_user_pays_for_their_own_runs_through_one_provider(
    provider: WattfareProvider, wattfare: Wattfare, user_id: str
) -> None:
    other = f"{user_id}_other"
    agent = Agent(instructions="Be brief.")

    await agent.run("Hi", model=model_for(provider, user_id))
    await agent.run("Hi", model=model_for(provider, other))
    await agent.run("Hi again", model=model_for(provider, other))

    assert (charged_requests(wattfare, user_id), charged_requests(wattfare, other)) == (1, 2)

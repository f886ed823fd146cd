"""A LlamaIndex agent whose every model call is paid from your user's Wattfare budget.

Run `make dev` in another terminal, then:
    set -a; . .wattfare/dev.env; set +a; python examples/llamaindex_agent.py [app_user_id]

The FunctionAgent has two tools and streams its answer. A user who has not connected a budget (or has
revoked it) gets the "Connect AI budget" link instead of an answer; one whose cap is spent, when it resets.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ToolCallResult

from wattfare import BudgetExceededError, NotConnectedError, Wattfare
from wattfare_llamaindex import WattfareLLM

QUESTION = "What is the weather in Paris, in Fahrenheit? Use get_weather, then to_fahrenheit."


def get_weather(city: str) -> str:
    """The current weather in a city, in degrees Celsius."""
    return f"It is 21 degrees Celsius and sunny in {city}."


def to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32


async def main(app_user_id: str) -> int:
    """Answer QUESTION for `app_user_id`, charged to their budget; the exit status says how it went."""
    wf = Wattfare()  # reads WATTFARE_SECRET_KEY and WATTFARE_BASE_URL, as WattfareLLM does
    llm = WattfareLLM(model="openai/gpt-4o-mini", user_id=app_user_id)  # the one-line swap for OpenAI(...)
    agent = FunctionAgent(
        tools=[get_weather, to_fahrenheit], llm=llm, system_prompt="Answer weather questions with the tools."
    )
    try:
        handler = agent.run(QUESTION)
        async for event in handler.stream_events():
            if isinstance(event, ToolCallResult):
                print(f"[{event.tool_name}({event.tool_kwargs}) -> {event.tool_output.content}]")
            elif isinstance(event, AgentStream):
                print(event.delta, end="", flush=True)
        await handler
        status = wf.user(app_user_id).status()
        print(f"\n{app_user_id} has spent ${status.spent_usd} this month; ${status.remaining_usd} left")
        return 0
    except NotConnectedError:
        # Live keys: the user connects a budget in Wattfare's popup (test keys connect new users by themselves).
        session = wf.create_session(app_user_id, monthly_usd="5")
        print(f"{app_user_id} has not connected an AI budget: open {session.connect_url}")
        return 2
    except BudgetExceededError as exc:
        print(f"{app_user_id}'s monthly AI budget is spent; it resets at {exc.resets_at}")
        return 3
    finally:
        await llm.aclose()
        llm.close()
        wf.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else f"user_{uuid.uuid4().hex[:8]}")))

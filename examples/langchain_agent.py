"""A LangChain agent with tools, whose every model call is paid from the end user's Wattfare budget.

Run `make dev` in another terminal, then:
    set -a; . .wattfare/dev.env; set +a
    python examples/langchain_agent.py user_42 "What is the weather in Paris?"

The app builds one `ChatWattfare` at startup and, per request, an agent on `llm.for_user(user_id)`:
a cheap copy that shares the connections. A user who has not connected a budget (or revoked it) gets
the "Connect AI budget" link instead of an answer; a user whose cap is spent is told when it resets.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, TextIO, cast

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool

from wattfare import BudgetExceededError, NotConnectedError, Wattfare
from wattfare_langchain import ChatWattfare


@tool
def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"It is sunny and 21 degrees C in {city}."


@tool
def convert_celsius(celsius: float) -> str:
    """Convert a temperature from Celsius to Fahrenheit."""
    return f"{celsius * 9 / 5 + 32:.1f} F"


TOOLS = [get_weather, convert_celsius]
SYSTEM_PROMPT = "You are a concise assistant. Use the tools for weather questions."


def ask(llm: ChatWattfare, user_id: str, question: str, out: TextIO) -> Decimal:
    """Run one agent turn for `user_id`, streaming its answer to `out`; return what it cost the user.

    Raises:
        wattfare.NotConnectedError: The user has no active connection to this app.
        wattfare.BudgetExceededError: The user's monthly cap is spent.
    """
    agent = create_agent(llm.for_user(user_id), TOOLS, system_prompt=SYSTEM_PROMPT)
    cost = Decimal(0)
    parts = agent.stream({"messages": [HumanMessage(question)]}, stream_mode=["messages", "updates"])
    # langgraph types every v1 stream item as `dict[str, Any] | Any`; a list of modes yields (mode, data) pairs.
    for mode, data in cast("Iterator[tuple[str, Any]]", parts):
        if mode == "messages":
            chunk, _ = data
            if isinstance(chunk, AIMessageChunk) and chunk.text:
                out.write(chunk.text)  # tokens, as the model streams them
        else:
            for update in data.values():
                for message in (update or {}).get("messages", []):
                    if isinstance(message, AIMessage):
                        for call in message.tool_calls:
                            out.write(f"\n[calling {call['name']}({call['args']})]\n")
                        cost += Decimal(message.response_metadata["wattfare"]["cost_usd"])
    out.write("\n")
    return cost


def serve(wf: Wattfare, llm: ChatWattfare, user_id: str, question: str, out: TextIO) -> int:
    """What the app does for one request: answer, or tell the user what to do about their budget."""
    try:
        cost = ask(llm, user_id, question, out)
    except NotConnectedError:
        session = wf.create_session(user_id, monthly_usd="5")
        out.write(f"Connect your AI budget to continue: {session.connect_url}\n")
        return 2
    except BudgetExceededError as exc:
        when = f"{exc.resets_at:%Y-%m-%d %H:%M} UTC" if exc.resets_at else "next month"
        out.write(f"Your AI budget for this app is spent; it resets {when}.\n")
        return 3
    status = wf.user(user_id).status()
    out.write(f"This answer cost you ${cost}; ${status.remaining_usd} left this month.\n")
    return 0


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description="A LangChain agent paid from the end user's Wattfare budget.")
    parser.add_argument("user_id", help="your app's id for the user who pays")
    parser.add_argument("question", nargs="?", default="What is the weather in Paris?")
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    args = parser.parse_args(argv)
    wf = Wattfare()  # reads WATTFARE_SECRET_KEY and WATTFARE_BASE_URL, like ChatWattfare
    llm = ChatWattfare(model=args.model)  # built once; each request gets llm.for_user(...)
    try:
        return serve(wf, llm, args.user_id, args.question, out)
    finally:
        llm.close()
        wf.close()


if __name__ == "__main__":
    sys.exit(main())

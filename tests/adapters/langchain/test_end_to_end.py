"""ChatWattfare against a real `wattfare serve` process: metering, caps and revocation, seen through LangChain."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

import wattfare
from tests.support.wattfare_server import ServerProcess
from wattfare_langchain import ChatWattfare

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("langchain-server")]


@tool
def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny in {city}."


@pytest.fixture
def wf(wattfare_server: ServerProcess) -> Iterator[wattfare.Wattfare]:
    with wattfare.Wattfare(wattfare_server.secret, wattfare_server.base_url) as client:
        yield client


@pytest.fixture
def app_llm(wattfare_server: ServerProcess) -> ChatWattfare:
    """The app's one model, built at startup; requests use `for_user`."""
    server = wattfare_server
    # A plain-string key, as apps write it: pydantic wraps it in SecretStr, pyright sees only `SecretStr | None`.
    return ChatWattfare(model="openai/gpt-4o-mini", secret_key=server.secret, base_url=server.base_url)  # pyright: ignore[reportArgumentType]


def _streamed(chunks: Iterator[AIMessage]) -> AIMessageChunk:
    full: AIMessageChunk | None = None
    for chunk in chunks:
        assert isinstance(chunk, AIMessageChunk)  # what a chat model streams; `bind_tools` types it as AIMessage
        full = chunk if full is None else full + chunk
    assert full is not None
    return full


def _cost(message: BaseMessage) -> Decimal:
    return Decimal(message.response_metadata["wattfare"]["cost_usd"])


def test_a_streamed_agent_turn_with_a_tool_call_is_metered_and_charged(
    app_llm: ChatWattfare, wf: wattfare.Wattfare
) -> None:
    llm = app_llm.for_user("e2e-agent").bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("In Lisbon?")]
    call_turn = _streamed(llm.stream(history))
    assert [call["name"] for call in call_turn.tool_calls] == ["get_weather"]
    history += [AIMessage(content=call_turn.content, tool_calls=call_turn.tool_calls)]
    history += [get_weather.invoke(call) for call in call_turn.tool_calls]
    answer_turn = _streamed(llm.stream(history))
    assert answer_turn.text.startswith("Sandbox read the tool result: Sunny in Lisbon.")
    costs = [_cost(call_turn), _cost(answer_turn)]
    assert all(cost > 0 for cost in costs)
    status = wf.user("e2e-agent").status()
    assert status.spent_usd == sum(costs)
    assert Decimal(answer_turn.response_metadata["wattfare"]["remaining_usd"]) == status.remaining_usd


def test_a_spent_cap_raises_budget_exceeded_through_langchain(app_llm: ChatWattfare, wf: wattfare.Wattfare) -> None:
    cap = Decimal("0.0002")
    wf.create_session("e2e-capped", monthly_usd=cap)
    chain = ChatPromptTemplate.from_messages([("human", "Say {word}")]) | app_llm.for_user("e2e-capped")
    answered = 0
    with pytest.raises(wattfare.BudgetExceededError) as raised:  # noqa: PT012  (spend until the cap says no)
        for _ in range(100):
            chain.invoke({"word": "hello"})
            answered += 1
    assert answered > 0
    assert raised.value.resets_at is not None
    assert wf.user("e2e-capped").status().spent_usd <= cap
    with pytest.raises(wattfare.BudgetExceededError):
        list(app_llm.for_user("e2e-capped").stream("Still there?"))


async def test_a_spent_cap_raises_budget_exceeded_through_async_streams(
    app_llm: ChatWattfare, wf: wattfare.Wattfare
) -> None:
    wf.create_session("e2e-capped-async", monthly_usd="0.000001")
    llm = app_llm.for_user("e2e-capped-async")
    try:
        with pytest.raises(wattfare.BudgetExceededError):
            async for _ in llm.astream("Hello"):
                pass
        with pytest.raises(wattfare.BudgetExceededError):
            await llm.ainvoke("Hello")
    finally:
        await llm.aclose()


def test_revoking_mid_stream_stops_a_langchain_stream_with_not_connected(
    app_llm: ChatWattfare, wf: wattfare.Wattfare
) -> None:
    llm = app_llm.for_user("e2e-revoked")
    received: list[AIMessageChunk] = []
    with pytest.raises(wattfare.NotConnectedError):  # noqa: PT012  (the error arrives mid-iteration)
        for chunk in llm.stream("Hello [sandbox:slow] [sandbox:long]", max_tokens=400):
            received.append(chunk)
            if len(received) == 3:
                wf.user("e2e-revoked").disconnect()
    assert 3 <= len(received) < 400
    assert "".join(chunk.text for chunk in received).startswith("Sandbox reply to:")


def test_an_answer_the_cap_shortened_says_so_in_its_metadata_whole_or_streamed(
    app_llm: ChatWattfare, wf: wattfare.Wattfare
) -> None:
    # gpt-4o-mini's 4,096-token allowance costs $0.0025 at $0.60/M: a tenth of a cent affords about 1,600.
    wf.create_session("e2e-nearly-spent", monthly_usd="0.001")
    llm = app_llm.for_user("e2e-nearly-spent")

    whole = llm.invoke("Hello")
    streamed = _streamed(llm.stream("Hello again"))

    for reply in (whole, streamed):
        meta = reply.response_metadata["wattfare"]
        assert meta["clamped"] is True
        assert 0 < meta["max_tokens"] < 4096


def test_an_answer_with_room_to_spare_says_it_was_not_shortened(app_llm: ChatWattfare) -> None:
    meta = app_llm.for_user("e2e-roomy").invoke("Hello", max_tokens=50).response_metadata["wattfare"]

    assert (meta["max_tokens"], meta["clamped"]) == (50, False)

"""ChatWattfare without a server: construction, users, retries, caching, connections and conversions.

The core client is given an `httpx.MockTransport` that plays a tiny Wattfare; everything else is real.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import httpx
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

import wattfare
from wattfare_langchain import ChatWattfare
from wattfare_langchain._connections import ClientPool, ClientSettings
from wattfare_langchain._convert import to_openai_messages, tool_choice_param

pytestmark = pytest.mark.anyio

# ChatWattfare takes what ChatOpenAI takes: a plain-string key (pydantic wraps it in SecretStr) and ChatOpenAI's names
# (validation aliases, or request fields it routes into the body). Pyright sees only the declared fields: the
# `pyright: ignore`s below mark exactly those calls.
KEY = "sk_test_offline"
MODEL = "openai/gpt-4o-mini"


def completion(content: str = "Hi!", *, tool_calls: list[dict[str, Any]] | None = None, **usage: Any) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, **usage},
    }
    return json.dumps(body).encode()


class FakeWattfare:
    """A Wattfare that answers `POST /chat/completions` with scripted responses, recording each request."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.responses) > 1:
            return self.responses.pop(0)
        return self.responses[0]

    @property
    def users(self) -> list[str | None]:
        return [request.headers.get("wattfare-user") for request in self.requests]

    def client(self) -> wattfare.Wattfare:
        return wattfare.Wattfare(KEY, http_client=httpx.Client(transport=httpx.MockTransport(self)), max_retries=0)

    def async_client(self) -> wattfare.AsyncWattfare:
        transport = httpx.MockTransport(self)
        return wattfare.AsyncWattfare(KEY, http_client=httpx.AsyncClient(transport=transport), max_retries=0)


def ok(body: bytes | None = None) -> httpx.Response:
    headers = {"Wattfare-Cost-Usd": "0.0000015", "Wattfare-Remaining-Usd": "4.9999985", "Wattfare-Request-Id": "req_1"}
    return httpx.Response(200, content=body or completion(), headers=headers)


def spent_cap() -> httpx.Response:
    error = {"code": "budget_exceeded", "message": "Cap reached.", "resetsAt": "2030-01-01T00:00:00Z"}
    return httpx.Response(402, json={"error": error}, headers={"x-should-retry": "false"})


def unavailable() -> httpx.Response:
    return httpx.Response(503, json={"error": {"code": "unavailable", "message": "Try again."}})


# ---------------------------------------------------------------- construction and users


def test_a_missing_secret_key_is_a_usage_error_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATTFARE_SECRET_KEY", raising=False)
    with pytest.raises(wattfare.UsageError, match="WATTFARE_SECRET_KEY"):
        ChatWattfare(model=MODEL, user_id="u1")


def test_the_key_is_a_secret_in_reprs_and_dumps() -> None:
    llm = ChatWattfare(model=MODEL, user_id="u1", secret_key=KEY)  # pyright: ignore[reportArgumentType]
    assert KEY not in repr(llm)
    assert KEY not in json.dumps(llm.model_dump(mode="json"))


def test_a_model_without_a_user_refuses_to_send_anything() -> None:
    fake = FakeWattfare(ok())
    llm = ChatWattfare(model=MODEL, client=fake.client())
    with pytest.raises(wattfare.UsageError, match="for_user"):
        llm.invoke("Hello")
    assert fake.requests == []


def test_for_user_copies_charge_their_own_user_through_the_same_client() -> None:
    fake = FakeWattfare(ok())
    app_llm = ChatWattfare(model=MODEL, temperature=0.3, client=fake.client())
    alice, bob = app_llm.for_user("alice"), app_llm.for_user("bob")
    alice.invoke("Hello")
    bob.invoke("Hello")
    assert fake.users == ["alice", "bob"]
    assert app_llm.user_id is None
    assert bob.temperature == 0.3
    assert bob.client is app_llm.client


def test_for_user_refuses_an_empty_user() -> None:
    with pytest.raises(wattfare.UsageError):
        ChatWattfare(model=MODEL, secret_key=KEY).for_user("")  # pyright: ignore[reportArgumentType]


def test_an_llm_cache_never_serves_one_users_answer_to_another() -> None:
    fake = FakeWattfare(ok())
    llm = ChatWattfare(model=MODEL, client=fake.client(), cache=InMemoryCache())
    llm.for_user("alice").invoke("Same question")
    llm.for_user("alice").invoke("Same question")
    llm.for_user("bob").invoke("Same question")
    assert fake.users == ["alice", "bob"]


async def test_async_calls_go_through_the_async_client() -> None:
    fake = FakeWattfare(ok())
    reply = await ChatWattfare(model=MODEL, user_id="carol", async_client=fake.async_client()).ainvoke("Hello")
    assert reply.text == "Hi!"
    assert reply.response_metadata["wattfare"] == {
        "cost_usd": "0.0000015",
        "remaining_usd": "4.9999985",
        "request_id": "req_1",
        "max_tokens": None,
        "clamped": None,
    }
    assert fake.users == ["carol"]


def test_chat_openai_constructor_arguments_keep_working() -> None:
    fake = FakeWattfare(ok())
    llm = ChatWattfare(
        model=MODEL,
        user_id="u1",
        client=fake.client(),
        max_completion_tokens=64,  # pyright: ignore[reportCallIssue]
        reasoning_effort="low",
        stream_usage=True,
        extra_body={"provider": {"sort": "price"}},
        service_tier="flex",  # pyright: ignore[reportCallIssue]
        stop_sequences=["END"],  # pyright: ignore[reportCallIssue]
    )
    llm.invoke("Hello")
    body = json.loads(fake.requests[0].content)
    assert body["max_tokens"] == 64
    assert body["reasoning_effort"] == "low"
    assert body["provider"] == {"sort": "price"}
    assert body["service_tier"] == "flex"
    assert body["stop"] == ["END"]
    assert "stream_usage" not in body


def test_chat_openai_client_names_set_the_client_and_are_never_sent() -> None:
    llm = ChatWattfare(
        model=MODEL,
        openai_api_key=KEY,  # pyright: ignore[reportCallIssue]
        openai_api_base="http://wattfare.test",  # pyright: ignore[reportCallIssue]
        request_timeout=7.5,  # pyright: ignore[reportCallIssue]
        max_retries=0,
    )
    assert llm.secret_key is not None
    assert llm.secret_key.get_secret_value() == KEY
    assert (llm.base_url, llm.timeout, llm.max_retries) == ("http://wattfare.test", 7.5, 0)
    assert llm.model_kwargs == {}
    assert llm._default_params == {}


@pytest.mark.parametrize(
    ("argument", "advice"),
    [
        ("openai_organization", "remove it"),
        ("organization", "remove it"),
        ("openai_proxy", "proxy="),
        ("default_headers", "headers="),
        ("default_query", "http_client="),
        ("http_client", "http_client="),
        ("http_async_client", "async_client="),
        ("use_responses_api", "Chat Completions only"),
        ("include_response_headers", "response_metadata"),
    ],
)
def test_chat_openai_arguments_without_a_meaning_here_are_refused_with_what_to_do(argument: str, advice: str) -> None:
    options: dict[str, Any] = {argument: "x"}  # any value: the name alone is refused
    with pytest.raises(wattfare.UsageError, match=argument) as refused:
        ChatWattfare(model=MODEL, secret_key=KEY, **options)  # pyright: ignore[reportArgumentType]
    assert advice in str(refused.value)


def test_an_unknown_argument_is_refused_and_the_message_names_the_explicit_routes() -> None:
    with pytest.raises(wattfare.UsageError, match="temprature") as refused:
        ChatWattfare(model=MODEL, secret_key=KEY, temprature=0.2)  # pyright: ignore[reportArgumentType, reportCallIssue]
    message = str(refused.value)
    assert "did you mean temperature" in message
    assert "model_kwargs" in message
    assert "extra_body" in message


@pytest.mark.parametrize("where", ["model_kwargs", "extra_body"])
@pytest.mark.parametrize("name", ["api_key", "openai_api_key", "secret_key", "timeout", "openai_organization"])
def test_client_settings_are_refused_in_the_explicit_request_fields(where: str, name: str) -> None:
    options: dict[str, Any] = {where: {name: "sk_test_elsewhere"}}
    with pytest.raises(wattfare.UsageError, match=f"{name} in {where}"):
        ChatWattfare(model=MODEL, secret_key=KEY, **options)  # pyright: ignore[reportArgumentType]


def test_client_settings_are_refused_as_call_arguments() -> None:
    fake = FakeWattfare(ok())
    llm = ChatWattfare(model=MODEL, user_id="u1", client=fake.client())
    with pytest.raises(wattfare.UsageError, match="openai_api_key"):
        llm.invoke("Hello", openai_api_key=KEY)
    with pytest.raises(wattfare.UsageError, match="api_key"):
        llm.bind(api_key=KEY).invoke("Hello")
    assert fake.requests == []


def test_a_chat_openai_request_field_given_twice_is_refused() -> None:
    with pytest.raises(wattfare.UsageError, match="service_tier is given twice"):
        ChatWattfare(model=MODEL, secret_key=KEY, service_tier="flex", model_kwargs={"service_tier": "auto"})  # pyright: ignore[reportArgumentType, reportCallIssue]


# ---------------------------------------------------------------- retries


def test_with_retry_never_retries_a_spent_cap() -> None:
    fake = FakeWattfare(spent_cap())
    llm = ChatWattfare(model=MODEL, user_id="u1", client=fake.client())
    retrying = llm.with_retry(stop_after_attempt=3, wait_exponential_jitter=False)
    with pytest.raises(wattfare.BudgetExceededError):
        retrying.invoke("Hello")
    with pytest.raises(wattfare.BudgetExceededError):
        llm.bind_tools([_lookup]).with_retry(stop_after_attempt=3, wait_exponential_jitter=False).invoke("Hello")
    assert len(fake.requests) == 2


def test_with_retry_never_retries_a_402_even_when_asked_to() -> None:
    fake = FakeWattfare(spent_cap())
    llm = ChatWattfare(model=MODEL, user_id="u1", client=fake.client())
    retrying = llm.with_retry(retry_if_exception_type=(wattfare.APIError,), wait_exponential_jitter=False)
    with pytest.raises(wattfare.BudgetExceededError):
        retrying.invoke("Hello")
    assert len(fake.requests) == 1


def test_with_retry_still_retries_what_waiting_can_fix() -> None:
    fake = FakeWattfare(unavailable(), ok())
    llm = ChatWattfare(model=MODEL, user_id="u1", client=fake.client())
    reply = llm.with_retry(stop_after_attempt=3, wait_exponential_jitter=False).invoke("Hello")
    assert reply.text == "Hi!"
    assert len(fake.requests) == 2


@tool
def _lookup(query: str) -> str:
    """Look something up."""
    return query


# ---------------------------------------------------------------- responses


def test_unparseable_tool_arguments_become_invalid_tool_calls() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"query": "ok"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": '{"query": '}},
        {"id": "call_3", "type": "function", "function": {"name": "lookup", "arguments": "[1, 2]"}},
    ]
    fake = FakeWattfare(ok(completion("", tool_calls=calls)))
    reply = ChatWattfare(model=MODEL, user_id="u1", client=fake.client()).invoke("Hello")
    assert reply.tool_calls == [{"name": "lookup", "args": {"query": "ok"}, "id": "call_1", "type": "tool_call"}]
    assert [(bad["id"], bad["args"]) for bad in reply.invalid_tool_calls] == [
        ("call_2", '{"query": '),
        ("call_3", "[1, 2]"),
    ]


def test_cached_and_reasoning_tokens_reach_the_usage_details() -> None:
    usage: dict[str, Any] = {
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    fake = FakeWattfare(ok(completion(**usage)))
    reply = ChatWattfare(model=MODEL, user_id="u1", client=fake.client()).invoke("Hello")
    assert reply.usage_metadata == {
        "input_tokens": 3,
        "output_tokens": 2,
        "total_tokens": 5,
        "input_token_details": {"cache_read": 2},
        "output_token_details": {"reasoning": 1},
    }


# ---------------------------------------------------------------- requests


def test_assistant_turns_go_back_as_their_text_and_tool_calls_only() -> None:
    call = {"name": "lookup", "args": {"query": "x"}, "id": "call_1", "type": "tool_call"}
    v1_turn = AIMessage(
        [
            {"type": "reasoning", "reasoning": "think"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_call", "name": "lookup", "args": {"query": "x"}, "id": "call_1"},
        ],
        tool_calls=[call],
    )
    anthropic_turn = AIMessage(
        [{"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"query": "x"}}], tool_calls=[call]
    )
    wire_call = {"type": "function", "id": "call_1", "function": {"name": "lookup", "arguments": '{"query": "x"}'}}
    assert to_openai_messages([v1_turn, anthropic_turn, ToolMessage("x", tool_call_id="call_1", name="lookup")]) == [
        {"role": "assistant", "content": "Let me look.", "tool_calls": [wire_call]},
        {"role": "assistant", "content": None, "tool_calls": [wire_call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"},
    ]
    assert to_openai_messages([AIMessage("")]) == [{"role": "assistant", "content": ""}]
    assert to_openai_messages([HumanMessage("hi")]) == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (None, None),
        (False, None),
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("any", "required"),
        ("b", {"type": "function", "function": {"name": "b"}}),
        ({"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "a"}}),
    ],
)
def test_tool_choice_speaks_openai(choice: object, wire: object) -> None:
    assert tool_choice_param(choice, ["a", "b"]) == wire


@pytest.mark.parametrize(("choice", "names"), [("c", ["a", "b"]), (True, ["a", "b"]), (3, ["a"])])
def test_a_tool_choice_naming_no_bound_tool_is_refused(choice: object, names: list[str]) -> None:
    with pytest.raises(ValueError, match="tool"):
        tool_choice_param(choice, names)


def test_tool_choice_true_forces_the_only_tool() -> None:
    assert tool_choice_param(True, ["only"]) == {"type": "function", "function": {"name": "only"}}


def test_with_structured_output_refuses_unknown_methods_and_arguments() -> None:
    llm = ChatWattfare(model=MODEL, user_id="u1", secret_key=KEY)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="unknown method"):
        llm.with_structured_output({"title": "X", "type": "object"}, method="xml")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="unsupported"):
        llm.with_structured_output({"title": "X", "type": "object"}, temperature=0)
    with pytest.raises(ValueError, match="strict"):
        llm.with_structured_output({"title": "X", "type": "object"}, method="json_mode", strict=True)


# ---------------------------------------------------------------- connections


SETTINGS = ClientSettings(KEY, "http://127.0.0.1:9", None, 0)


def test_the_pool_shares_one_sync_client_per_settings() -> None:
    pool = ClientPool()
    client = pool.sync_client(SETTINGS)
    assert pool.sync_client(ClientSettings(KEY, "http://127.0.0.1:9", None, 0)) is client
    assert pool.sync_client(ClientSettings(KEY, "http://127.0.0.1:9", 5.0, 0)) is not client
    pool.close(SETTINGS)
    assert pool.sync_client(SETTINGS) is not client


def test_the_pool_keeps_one_async_client_per_event_loop_and_forgets_dead_loops() -> None:
    pool = ClientPool()

    async def twice() -> tuple[wattfare.AsyncWattfare, wattfare.AsyncWattfare]:
        return pool.async_client(SETTINGS), pool.async_client(SETTINGS)

    first, again = asyncio.run(twice())
    second, _ = asyncio.run(twice())
    assert first is again
    assert second is not first
    del first, again, second
    gc.collect()
    assert len(pool._async) == 0  # pyright: ignore[reportPrivateUsage]


def test_settings_never_show_the_key() -> None:
    assert KEY not in repr(SETTINGS)

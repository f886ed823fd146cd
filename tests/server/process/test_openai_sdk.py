"""The stock `openai` package against a real Wattfare process: nothing but `base_url`, `api_key` and `user`.

Completions run against the built-in sandbox (the default for test keys); what reaches the provider, and
how a spent cap looks to the client, is checked against the stand-in upstream process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, cast

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.support.standin_upstream import COMPLETION_PRICE, PROMPT_PRICE, StandIn
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.metering import prompt_token_bound, usd_to_nanos

pytestmark = pytest.mark.xdist_group("openai_sdk")

SANDBOX_MODEL = "openai/gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with wattfare_process(tmp_path_factory.mktemp("sdk-sandbox")) as running:
        yield running


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]) -> Iterator[ServerProcess]:
    with wattfare_process(tmp_path_factory.mktemp("sdk-standin"), env=standin_env) as running:
        yield running


def new_user() -> str:
    return f"sdk-user-{uuid.uuid4().hex[:12]}"


def suggest_cap(server: ServerProcess, user: str, usd: str) -> None:
    response = httpx.post(
        f"{server.api_url}/sessions",
        json={"appUserId": user, "requestLimit": {"monthlyUsd": float(usd)}},
        headers={"Authorization": f"Bearer {server.secret}"},
    )
    assert response.status_code == 200, response.text


def wattfare_field(chunk: ChatCompletionChunk) -> dict[str, Any]:
    # Not an OpenAI field: the SDK keeps it as an extra, which `to_dict` includes.
    field = chunk.to_dict().get("wattfare")
    assert isinstance(field, dict), f"no wattfare field on {chunk}"
    return cast("dict[str, Any]", field)


# -- completions, sandbox


def test_sync_client_gets_a_completion(sandboxed: ServerProcess) -> None:
    with openai.OpenAI(base_url=sandboxed.api_url, api_key=sandboxed.secret) as client:
        completion = client.chat.completions.create(model=SANDBOX_MODEL, messages=MESSAGES, user=new_user())

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_sync_client_stream_ends_with_a_usage_chunk_carrying_wattfares_cost(sandboxed: ServerProcess) -> None:
    with openai.OpenAI(base_url=sandboxed.api_url, api_key=sandboxed.secret) as client:
        chunks = list(
            client.chat.completions.create(model=SANDBOX_MODEL, messages=MESSAGES, user=new_user(), stream=True)
        )

    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    assert text
    last = chunks[-1]
    # The client did not ask for usage: Wattfare asks the upstream for it, and passes it on with its cost.
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    cost = wattfare_field(last)["costUsd"]
    assert isinstance(cost, int | float)
    assert Decimal(repr(cost)) > 0


@pytest.mark.anyio
async def test_async_client_gets_a_completion(sandboxed: ServerProcess) -> None:
    async with openai.AsyncOpenAI(base_url=sandboxed.api_url, api_key=sandboxed.secret) as client:
        completion = await client.chat.completions.create(model=SANDBOX_MODEL, messages=MESSAGES, user=new_user())

    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0


@pytest.mark.anyio
async def test_async_client_stream_ends_with_a_usage_chunk_carrying_wattfares_cost(sandboxed: ServerProcess) -> None:
    async with openai.AsyncOpenAI(base_url=sandboxed.api_url, api_key=sandboxed.secret) as client:
        stream = await client.chat.completions.create(
            model=SANDBOX_MODEL, messages=MESSAGES, user=new_user(), stream=True
        )
        chunks = [chunk async for chunk in stream]

    assert "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    assert chunks[-1].usage is not None
    assert Decimal(repr(wattfare_field(chunks[-1])["costUsd"])) > 0


# -- a spent cap, stand-in


def test_spent_cap_is_a_402_budget_exceeded_that_the_openai_client_does_not_retry(
    proxied: ServerProcess, standin: StandIn
) -> None:
    user = new_user()
    suggest_cap(proxied, user, "0.0003")  # a few answers' worth
    sent: list[str] = []

    def count(request: Any) -> None:
        sent.append(str(request.url))

    http_client = openai.DefaultHttpxClient(event_hooks={"request": [count]})
    with openai.OpenAI(
        base_url=proxied.api_url, api_key=proxied.secret, max_retries=3, http_client=http_client
    ) as client:
        answered = 0
        with pytest.raises(openai.APIStatusError) as refused:  # noqa: PT012 - spend until the cap is reached
            for _ in range(30):
                client.chat.completions.create(model="standin/ok", messages=MESSAGES, user=user)
                answered += 1
        asked_upstream = standin.stats()["total"]
        sent.clear()
        with pytest.raises(openai.APIStatusError) as again:
            client.chat.completions.create(model="standin/ok", messages=MESSAGES, user=user)

    assert answered > 0
    for error in (refused.value, again.value):
        assert error.status_code == 402
        assert error.code == "budget_exceeded"
        assert error.response.headers["x-should-retry"] == "false"
    # One request from the client (max_retries=3 notwithstanding), none of it forwarded upstream.
    assert len(sent) == 1
    assert standin.stats()["total"] == asked_upstream


@pytest.mark.anyio
async def test_spent_cap_refuses_an_async_stream_before_it_starts(proxied: ServerProcess, standin: StandIn) -> None:
    user = new_user()
    suggest_cap(proxied, user, "0.000001")  # less than any request's prompt costs
    asked_upstream = standin.stats()["total"]
    async with openai.AsyncOpenAI(base_url=proxied.api_url, api_key=proxied.secret, max_retries=3) as client:
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(model="standin/ok", messages=MESSAGES, user=user, stream=True)

    assert refused.value.status_code == 402
    assert refused.value.code == "budget_exceeded"
    assert standin.stats()["total"] == asked_upstream


# -- what reaches the provider, stand-in


def test_openai_parameters_reach_the_upstream_unchanged(proxied: ServerProcess, standin: StandIn) -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    tool_choice: Any = {"type": "function", "function": {"name": "get_weather"}}
    response_format: Any = {"type": "json_object"}
    with openai.OpenAI(base_url=proxied.api_url, api_key=proxied.secret) as client:
        client.chat.completions.create(
            model="standin/ok",
            messages=MESSAGES,
            user=new_user(),
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            seed=42,
            stop=["\n\n", "END"],
            n=2,
            max_tokens=50,
            temperature=0.25,
        )

    sent = standin.stats()["last_request"]
    assert sent["tools"] == tools
    assert sent["tool_choice"] == tool_choice
    assert sent["response_format"] == response_format
    assert sent["seed"] == 42
    assert sent["stop"] == ["\n\n", "END"]
    assert sent["n"] == 2
    assert sent["temperature"] == 0.25
    assert sent["max_tokens"] == 50  # affordable, so left as asked
    assert sent["messages"] == MESSAGES


def test_stream_that_declines_usage_still_ends_with_wattfares_cost(proxied: ServerProcess, standin: StandIn) -> None:
    with openai.OpenAI(base_url=proxied.api_url, api_key=proxied.secret) as client:
        chunks = list(
            client.chat.completions.create(
                model="standin/ok",
                messages=MESSAGES,
                user=new_user(),
                stream=True,
                stream_options={"include_usage": False},
            )
        )

    # Metering needs the upstream's usage, so Wattfare asks for it whatever the client said.
    assert standin.stats()["last_request"]["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage is not None
    assert Decimal(repr(wattfare_field(chunks[-1])["costUsd"])) > 0


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("asked", [100_000, None], ids=["more-than-affordable", "none"])
def test_max_tokens_is_clamped_to_what_the_budget_affords(
    proxied: ServerProcess, standin: StandIn, field: str, asked: int | None
) -> None:
    user, cap = new_user(), usd_to_nanos("0.001")
    suggest_cap(proxied, user, "0.001")
    limit: dict[str, Any] = {} if asked is None else {field: asked}
    with openai.OpenAI(base_url=proxied.api_url, api_key=proxied.secret) as client:
        client.chat.completions.create(model="standin/ok", messages=MESSAGES, user=user, **limit)

    sent = standin.stats()["last_request"]
    sent_field = field if asked is not None else "max_tokens"
    # The whole cap, less the worst case of the prompt, buys this many completion tokens and no more.
    worst_prompt = prompt_token_bound(MESSAGES) * usd_to_nanos(PROMPT_PRICE)
    affordable = (cap - worst_prompt) // usd_to_nanos(COMPLETION_PRICE)
    assert 0 < affordable < 500
    assert sent[sent_field] == affordable
    other = "max_completion_tokens" if sent_field == "max_tokens" else "max_tokens"
    assert other not in sent


def test_end_user_reaches_the_upstream_only_as_an_opaque_id(proxied: ServerProcess, standin: StandIn) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []
    with openai.OpenAI(base_url=proxied.api_url, api_key=proxied.secret) as client:
        for user, by_header in ((alice, False), (alice, True), (bob, False)):
            if by_header:
                client.chat.completions.create(
                    model="standin/ok", messages=MESSAGES, extra_headers={"Wattfare-User": user}
                )
            else:
                client.chat.completions.create(model="standin/ok", messages=MESSAGES, user=user)
            stats = standin.stats()
            assert user not in stats["last_raw"]
            assert all(user not in value for value in stats["last_headers"].values())
            assert proxied.secret not in str(stats["last_headers"])
            seen.append(stats["last_request"]["user"])

    alice_by_body, alice_by_header, bob_by_body = seen
    assert alice_by_body.startswith("wf_")
    with openai.OpenAI(base_url=proxied.api_url, api_key=proxied.secret) as client:
        client.chat.completions.create(
            model="standin/ok", messages=MESSAGES, user=alice, extra_body={"safety_identifier": alice}
        )
    sent = standin.stats()["last_request"]
    assert sent["safety_identifier"] == sent["user"] == alice_by_body  # OpenAI's newer per-user field too
    assert alice_by_body == alice_by_header  # stable, however the app names its user
    assert bob_by_body != alice_by_body


# -- embeddings through the stock client (which asks for base64 by default and decodes it)


def test_sync_client_gets_embeddings_from_the_sandbox_as_floats_or_base64(sandboxed: ServerProcess) -> None:
    user = new_user()
    with openai.OpenAI(base_url=sandboxed.api_url, api_key=sandboxed.secret) as client:
        default = client.embeddings.create(model="openai/text-embedding-3-small", input=["a cat", "a dog"], user=user)
        floats = client.embeddings.create(
            model="openai/text-embedding-3-small", input=["a cat", "a dog"], user=user, encoding_format="float"
        )
        narrow = client.embeddings.with_raw_response.create(
            model="openai/text-embedding-3-large", input="a cat", user=user, dimensions=256
        )

    assert [item.index for item in default.data] == [0, 1]
    assert [len(item.embedding) for item in default.data] == [1536, 1536]
    # The client decoded the base64 it asked for: the very floats the float answer carries.
    assert [item.embedding for item in default.data] == [item.embedding for item in floats.data]
    assert default.usage.prompt_tokens == default.usage.total_tokens > 0
    assert len(narrow.parse().data[0].embedding) == 256
    assert Decimal(narrow.headers["wattfare-cost-usd"]) > 0
    assert narrow.headers["wattfare-request-id"].startswith("req_")


@pytest.mark.anyio
async def test_async_client_spent_cap_on_embeddings_is_a_402_it_does_not_retry(proxied: ServerProcess) -> None:
    user = new_user()
    suggest_cap(proxied, user, "0.00002")  # six requests' worth of "hello" on the stand-in
    async with openai.AsyncOpenAI(base_url=proxied.api_url, api_key=proxied.secret, max_retries=3) as client:
        with pytest.raises(openai.APIStatusError) as refused:  # noqa: PT012 - spend until the cap is reached
            for _ in range(20):
                await client.embeddings.create(model="standin/embed", input="hello", user=user)

    assert refused.value.status_code == 402
    assert refused.value.code == "budget_exceeded"

"""No way of building WattfareLLM lets a credential reach the model provider, sync or async, streamed or not.

Each test sends real requests through a `wattfare serve` process to the recording stand-in upstream, and
reads what the provider received: exactly the one request, with no field named like a credential and no
Wattfare key anywhere in its body or headers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from tests.adapters.upstream import Upstream
from tests.support.wattfare_server import ServerProcess
from wattfare import UsageError
from wattfare_llamaindex import WattfareLLM

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("standin")]

MODEL = "standin/ok"
USER = "u_llamaindex_credentials"
# Known sizes: no model list lookup, so the provider sees chat completions only.
SIZES: dict[str, Any] = {"context_window": 32768, "max_tokens": 16}


@dataclass
class Built:
    """A WattfareLLM and the httpx clients a test made for it (closed with it: the LLM leaves them to their owner)."""

    llm: WattfareLLM
    http_clients: list[httpx.Client] = field(default_factory=list[httpx.Client])
    async_http_clients: list[httpx.AsyncClient] = field(default_factory=list[httpx.AsyncClient])

    def close(self) -> None:
        self.llm.close()
        for client in self.http_clients:
            client.close()

    async def aclose(self) -> None:
        await self.llm.aclose()
        for client in self.async_http_clients:
            await client.aclose()


def with_secret_key(server: ServerProcess) -> Built:
    return Built(WattfareLLM(MODEL, USER, server.secret, server.base_url, **SIZES))


def with_openai_arguments(server: ServerProcess) -> Built:
    # An OpenAI(...) call kept whole: its names for the key, the server and request fields.
    llm = WattfareLLM(
        model=MODEL,
        user_id=USER,
        api_key=server.secret,
        api_base=server.base_url,
        timeout=30.0,
        max_retries=1,
        context_window=32768,
        max_new_tokens=16,
        logprobs=False,
        additional_kwargs={"top_k": 3},
    )
    return Built(llm)


def from_the_environment(server: ServerProcess) -> Built:
    # The fixture below sets WATTFARE_SECRET_KEY and WATTFARE_BASE_URL for this one.
    return Built(WattfareLLM(model=MODEL, user_id=USER, **SIZES))


def with_http_clients(server: ServerProcess) -> Built:
    http, async_http = httpx.Client(), httpx.AsyncClient()
    llm = WattfareLLM(
        model=MODEL,
        user_id=USER,
        secret_key=server.secret,
        base_url=server.base_url,
        http_client=http,
        async_http_client=async_http,
        **SIZES,
    )
    return Built(llm, [http], [async_http])


def for_a_user(server: ServerProcess) -> Built:
    app_llm = WattfareLLM(model=MODEL, user_id="u_app", api_key=server.secret, api_base=server.base_url, **SIZES)
    return Built(app_llm.for_user(USER))


BUILDS: list[Callable[[ServerProcess], Built]] = [
    with_secret_key,
    with_openai_arguments,
    from_the_environment,
    with_http_clients,
    for_a_user,
]


@pytest.fixture(params=BUILDS, ids=lambda build: build.__name__)
def built(
    request: pytest.FixtureRequest, standin_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Built]:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", standin_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", standin_server.base_url)
    made: Built = request.param(standin_server)
    yield made
    made.close()


def said(marker: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=f"Hi {marker}")]


def test_calls_send_no_credential_to_the_provider(
    built: Built, standin_server: ServerProcess, upstream: Upstream
) -> None:
    llm, keys = built.llm, [standin_server.secret]
    with upstream.receives_one_clean_request(keys) as marker:
        assert llm.chat(said(marker)).message.content
    with upstream.receives_one_clean_request(keys) as marker:
        assert [response.delta for response in llm.stream_chat(said(marker))]
    with upstream.receives_one_clean_request(keys) as marker:
        assert llm.complete(f"Hi {marker}").text


async def test_async_calls_send_no_credential_to_the_provider(
    built: Built, standin_server: ServerProcess, upstream: Upstream
) -> None:
    llm, keys = built.llm, [standin_server.secret]
    try:
        with upstream.receives_one_clean_request(keys) as marker:
            assert (await llm.achat(said(marker))).message.content
        with upstream.receives_one_clean_request(keys) as marker:
            assert [response.delta async for response in await llm.astream_chat(said(marker))]
        with upstream.receives_one_clean_request(keys) as marker:
            assert (await llm.acomplete(f"Hi {marker}")).text
    finally:
        await built.aclose()


REFUSED: list[dict[str, Any]] = [
    {"default_headers": {"X-Team": "a"}},
    {"api_version": "2024-06-01"},
    {"reuse_client": False},
    {"openai_client": "an openai.OpenAI"},
    {"apikey": "KEY"},
    {"openai_api_key": "KEY"},
    {"additional_kwargs": {"api_key": "KEY"}},
    {"additional_kwargs": {"secret_key": "KEY"}},
    {"additional_kwargs": {"api_base": "http://elsewhere.invalid"}},
]


@pytest.mark.parametrize("arguments", REFUSED, ids=lambda arguments: "-".join(map(str, arguments.items())))
def test_arguments_that_could_reach_the_provider_are_refused_before_anything_is_sent(
    arguments: dict[str, Any], standin_server: ServerProcess, upstream: Upstream
) -> None:
    given = json.loads(json.dumps(arguments).replace("KEY", standin_server.secret))
    with upstream.receives_nothing(), pytest.raises(UsageError):
        WattfareLLM(MODEL, USER, standin_server.secret, standin_server.base_url, **SIZES, **given)


@pytest.mark.parametrize("name", ["api_key", "secret_key", "api_base"])
async def test_client_settings_given_to_a_call_are_refused_before_anything_is_sent(
    name: str, standin_server: ServerProcess, upstream: Upstream
) -> None:
    llm = WattfareLLM(MODEL, USER, standin_server.secret, standin_server.base_url, **SIZES)
    with upstream.receives_nothing():
        with pytest.raises(UsageError, match=name):
            llm.chat(said("refused"), **{name: standin_server.secret})
        with pytest.raises(UsageError, match=name):
            await llm.achat(said("refused"), **{name: standin_server.secret})
        with pytest.raises(UsageError, match=name):
            await llm.astream_chat(said("refused"), **{name: standin_server.secret})
    llm.close()

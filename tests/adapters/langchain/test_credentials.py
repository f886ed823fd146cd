"""No way of building ChatWattfare lets a credential reach the model provider, sync or async, streamed or not.

Each test sends real requests through a `wattfare serve` process to the recording stand-in upstream, and
reads what the provider received: exactly the one request, with no field named like a credential and no
Wattfare key anywhere in its body or headers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wattfare
from tests.adapters.upstream import Upstream
from tests.support.wattfare_server import ServerProcess
from wattfare_langchain import ChatWattfare

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("standin")]

MODEL = "standin/ok"
USER = "u_langchain_credentials"

Build = Callable[[ServerProcess], ChatWattfare]

# Each build is written as an app would write it: a plain-string key (pydantic wraps it in SecretStr) and ChatOpenAI's
# names (validation aliases, or request fields routed into the body). Pyright sees only the declared fields: the
# `pyright: ignore`s below mark exactly those arguments.


def with_secret_key(server: ServerProcess) -> ChatWattfare:
    return ChatWattfare(model=MODEL, user_id=USER, secret_key=server.secret, base_url=server.base_url)  # pyright: ignore[reportArgumentType]


def with_api_key(server: ServerProcess) -> ChatWattfare:
    return ChatWattfare(model=MODEL, user_id=USER, api_key=server.secret, base_url=server.base_url)  # pyright: ignore[reportCallIssue]


def with_chat_openai_arguments(server: ServerProcess) -> ChatWattfare:
    # A ChatOpenAI(...) call kept whole: its names for the key, the server, the timeout and request fields.
    return ChatWattfare(
        model=MODEL,
        user_id=USER,
        openai_api_key=server.secret,  # pyright: ignore[reportCallIssue]
        openai_api_base=server.base_url,  # pyright: ignore[reportCallIssue]
        request_timeout=30,  # pyright: ignore[reportCallIssue]
        max_retries=1,
        max_completion_tokens=16,  # pyright: ignore[reportCallIssue]
        stop_sequences=["never"],  # pyright: ignore[reportCallIssue]
        service_tier="auto",  # pyright: ignore[reportCallIssue]
        logit_bias={},  # pyright: ignore[reportCallIssue]
        store=False,  # pyright: ignore[reportCallIssue]
        stream_usage=True,
        model_kwargs={"top_k": 3},
        extra_body={"provider": {"sort": "price"}},
    )


def from_the_environment(server: ServerProcess) -> ChatWattfare:
    # The fixture below sets WATTFARE_SECRET_KEY and WATTFARE_BASE_URL for this one.
    return ChatWattfare(model=MODEL, user_id=USER)


def with_clients(server: ServerProcess) -> ChatWattfare:
    return ChatWattfare(
        model=MODEL,
        user_id=USER,
        client=wattfare.Wattfare(server.secret, server.base_url),
        async_client=wattfare.AsyncWattfare(server.secret, server.base_url),
    )


def for_a_user(server: ServerProcess) -> ChatWattfare:
    return ChatWattfare(model=MODEL, api_key=server.secret, base_url=server.base_url).for_user(USER)  # pyright: ignore[reportCallIssue]


BUILDS: list[Build] = [
    with_secret_key,
    with_api_key,
    with_chat_openai_arguments,
    from_the_environment,
    with_clients,
    for_a_user,
]


@pytest.fixture(params=BUILDS, ids=lambda build: build.__name__)
def llm(
    request: pytest.FixtureRequest, standin_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ChatWattfare]:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", standin_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", standin_server.base_url)
    model: ChatWattfare = request.param(standin_server)
    yield model
    if model.client is not None:
        model.client.close()
    else:
        model.close()


def test_a_call_sends_no_credential_to_the_provider(
    llm: ChatWattfare, standin_server: ServerProcess, upstream: Upstream
) -> None:
    with upstream.receives_one_clean_request([standin_server.secret]) as marker:
        assert llm.invoke(f"Hi {marker}").text
    with upstream.receives_one_clean_request([standin_server.secret]) as marker:
        assert "".join(chunk.text for chunk in llm.stream(f"Hi {marker}"))


async def test_an_async_call_sends_no_credential_to_the_provider(
    llm: ChatWattfare, standin_server: ServerProcess, upstream: Upstream
) -> None:
    try:
        with upstream.receives_one_clean_request([standin_server.secret]) as marker:
            assert (await llm.ainvoke(f"Hi {marker}")).text
        with upstream.receives_one_clean_request([standin_server.secret]) as marker:
            assert "".join([chunk.text async for chunk in llm.astream(f"Hi {marker}")])
    finally:
        if llm.async_client is not None:
            await llm.async_client.aclose()
        else:
            await llm.aclose()


REFUSED: list[dict[str, Any]] = [
    {"openai_organization": "org-1"},
    {"organization": "org-1"},
    {"openai_proxy": "http://proxy.invalid:3128"},
    {"default_headers": {"X-Team": "a"}},
    {"default_query": {"team": "a"}},
    {"http_client": "an httpx.Client"},
    {"http_async_client": "an httpx.AsyncClient"},
    {"apikey": "KEY"},
    {"wattfare_key": "KEY"},
    {"model_kwargs": {"api_key": "KEY"}},
    {"model_kwargs": {"openai_api_key": "KEY"}},
    {"extra_body": {"secret_key": "KEY"}},
    {"extra_body": {"timeout": 5}},
]


@pytest.mark.parametrize("arguments", REFUSED, ids=lambda arguments: "-".join(map(str, arguments.items())))
def test_arguments_that_could_reach_the_provider_are_refused_before_anything_is_sent(
    arguments: dict[str, Any], standin_server: ServerProcess, upstream: Upstream
) -> None:
    given = json.loads(json.dumps(arguments).replace("KEY", standin_server.secret))
    with upstream.receives_nothing(), pytest.raises(wattfare.UsageError):
        ChatWattfare(
            model=MODEL,
            user_id=USER,
            secret_key=standin_server.secret,  # pyright: ignore[reportArgumentType]
            base_url=standin_server.base_url,
            **given,
        )


@pytest.mark.parametrize("name", ["api_key", "openai_api_key", "secret_key", "base_url"])
async def test_client_settings_given_to_a_call_are_refused_before_anything_is_sent(
    name: str, standin_server: ServerProcess, upstream: Upstream
) -> None:
    llm = ChatWattfare(model=MODEL, user_id=USER, secret_key=standin_server.secret, base_url=standin_server.base_url)  # pyright: ignore[reportArgumentType]
    setting: dict[str, Any] = {name: standin_server.secret}
    with upstream.receives_nothing():
        with pytest.raises(wattfare.UsageError, match=name):
            llm.invoke("Hi", **setting)
        with pytest.raises(wattfare.UsageError, match=name):
            await llm.bind(**setting).ainvoke("Hi")

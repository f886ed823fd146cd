"""WattfareProvider's settings: the core SDK's environment variables, per-user copies, refusals before a request."""

from __future__ import annotations

import asyncio

import pytest
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel

from tests.adapters.pydantic_ai.conftest import MODEL, charged_requests
from tests.support.wattfare_server import ServerProcess
from wattfare import UsageError, Wattfare
from wattfare_pydantic_ai import WattfareProvider

pytestmark = pytest.mark.xdist_group("pydantic_ai")


@pytest.mark.anyio
async def test_the_key_and_server_come_from_the_core_sdks_variables_and_never_from_openais(
    wattfare_server: ServerProcess, wattfare: Wattfare, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", wattfare_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", wattfare_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-be-sent")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")

    async with WattfareProvider(user_id=user_id) as provider:
        result = await Agent(OpenAIChatModel(MODEL, provider=provider)).run("Hi")

    assert provider.base_url == f"{wattfare_server.base_url}/api/v1/"
    assert provider.client.api_key == wattfare_server.secret
    assert provider.name == "wattfare"
    assert result.output.startswith("Sandbox reply to: Hi")
    assert charged_requests(wattfare, user_id) == 1


def test_the_api_root_is_accepted_as_the_base_url_without_doubling_it() -> None:
    provider = WattfareProvider(api_key="sk_test_x", base_url="https://wattfare.example/api/v1/")

    assert provider.base_url == "https://wattfare.example/api/v1/"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"api_key": ""}, "no secret key"),
        ({"api_key": "pk_test_x"}, "publishable key"),
        ({"api_key": "sk_test_x", "base_url": "wattfare.example"}, "must be an http"),
        ({"api_key": "sk_test_x", "user_id": ""}, "user_id"),
        ({"api_key": "sk_test_x", "user_id": "zoë"}, "printable ASCII"),
        ({"api_key": "sk_test_x", "openai_client": AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9")}, "either"),
    ],
    ids=["no_key", "publishable_key", "not_a_url", "empty_user", "non_ascii_user", "client_and_key"],
)
def test_a_mistake_is_a_usage_error_before_any_request(
    settings: dict[str, object], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATTFARE_SECRET_KEY", raising=False)

    with pytest.raises(UsageError, match=problem):
        WattfareProvider(**settings)  # pyright: ignore[reportArgumentType]


def test_for_user_names_another_user_on_the_same_connection_pool() -> None:
    provider = WattfareProvider(user_id="u_parent", api_key="sk_test_x", base_url="http://127.0.0.1:9")

    child = provider.for_user("u_child")

    assert (provider.user_id, child.user_id) == ("u_parent", "u_child")
    assert provider.client.default_headers["Wattfare-User"] == "u_parent"
    assert child.client.default_headers["Wattfare-User"] == "u_child"
    assert child.client._client is provider.client._client  # one httpx2 client, one pool
    assert child.for_user("u_grandchild").client._client is provider.client._client


def test_a_per_user_provider_follows_its_parent_to_a_new_http_client(
    wattfare_server: ServerProcess, wattfare: Wattfare, user_id: str
) -> None:
    # Leaving `async with provider` closes the client it made; entering again (here on a new event loop) makes
    # a new one. A provider from `for_user` must send through the new client, not the closed one.
    provider = WattfareProvider(api_key=wattfare_server.secret, base_url=wattfare_server.base_url)
    agent = Agent(OpenAIChatModel(MODEL, provider=provider.for_user(user_id)))

    async def run_once() -> str:
        async with provider:
            return (await agent.run("Hi")).output

    first = asyncio.run(run_once())
    second = asyncio.run(run_once())

    assert first == second
    assert charged_requests(wattfare, user_id) == 2

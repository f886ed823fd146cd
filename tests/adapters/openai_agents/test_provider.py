"""WattfareModelProvider's settings: the core SDK's environment variables, per-user copies, mistakes refused early."""

from __future__ import annotations

import pytest
from agents import Agent, RunConfig, Runner
from openai import AsyncOpenAI

from tests.adapters.openai_agents.conftest import MODEL, charged_requests
from tests.support.wattfare_server import ServerProcess
from wattfare import UsageError, Wattfare
from wattfare_agents import WattfareModelProvider

pytestmark = pytest.mark.xdist_group("openai_agents")


@pytest.mark.anyio
async def test_the_key_and_server_come_from_the_core_sdks_variables_and_never_from_openais(
    wattfare_server: ServerProcess, wattfare: Wattfare, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTFARE_SECRET_KEY", wattfare_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", wattfare_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-be-sent")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    provider = WattfareModelProvider(user_id=user_id)

    result = await Runner.run(
        Agent(name="Assistant", model=MODEL), "Hi", run_config=RunConfig(model_provider=provider, tracing_disabled=True)
    )
    await provider.aclose()

    model = provider.get_model(MODEL)
    assert str(model._client.base_url) == f"{wattfare_server.base_url}/api/v1/"
    assert model._client.api_key == wattfare_server.secret
    assert str(result.final_output).startswith("Sandbox reply to: Hi")
    assert charged_requests(wattfare, user_id) == 1


@pytest.mark.anyio
async def test_an_agent_without_a_model_is_told_to_name_one() -> None:
    provider = WattfareModelProvider(user_id="u_1", api_key="sk_test_x", base_url="http://127.0.0.1:9")
    run_config = RunConfig(model_provider=provider, tracing_disabled=True)

    with pytest.raises(UsageError, match="name the model"):
        await Runner.run(Agent(name="Assistant"), "Hi", run_config=run_config)


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
        WattfareModelProvider(**settings)  # pyright: ignore[reportArgumentType]


@pytest.mark.anyio
async def test_for_user_names_another_user_on_the_same_connection_pool_which_only_the_owner_closes() -> None:
    provider = WattfareModelProvider(user_id="u_parent", api_key="sk_test_x", base_url="http://127.0.0.1:9/api/v1")
    child = provider.for_user("u_child")
    parent_client, child_client = provider.get_model(MODEL)._client, child.get_model(MODEL)._client

    await child.aclose()
    still_open = not parent_client._client.is_closed
    await provider.aclose()

    assert (provider.user_id, child.user_id) == ("u_parent", "u_child")
    assert parent_client.default_headers["Wattfare-User"] == "u_parent"
    assert child_client.default_headers["Wattfare-User"] == "u_child"
    assert str(parent_client.base_url) == "http://127.0.0.1:9/api/v1/"
    assert child_client._client is parent_client._client  # one httpx2 client, one pool
    assert still_open
    assert parent_client._client.is_closed

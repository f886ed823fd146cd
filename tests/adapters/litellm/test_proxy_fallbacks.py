"""The LiteLLM proxy with fallbacks outside Wattfare: a refused or busy user is never served by them, an outage is.

The proxy runs as a subprocess with every fallback setting pointing the Wattfare groups at `outside`, an
`openai/…` deployment on the stand-in upstream under its own model name; `smart` and `broken` are Wattfare
deployments whose provider is the same stand-in (`broken` always gets a 502 from it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.adapters.held_request import holding
from tests.adapters.litellm.proxy_environment import Proxy, run_proxy
from tests.adapters.upstream import Upstream
from tests.support.standin_upstream import StandIn
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare

pytestmark = [
    pytest.mark.xdist_group("standin"),
    # The first run builds the proxy's venv (a few minutes); later runs reuse it.
    pytest.mark.timeout(1200),
]

OUTSIDE = "standin/outside-wattfare"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi"}]


def config() -> dict[str, Any]:
    wattfare_deployment = {"api_key": "os.environ/WATTFARE_SECRET_KEY", "api_base": "os.environ/WATTFARE_BASE_URL"}
    return {
        "model_list": [
            {"model_name": "smart", "litellm_params": {"model": "wattfare/standin/ok", **wattfare_deployment}},
            {"model_name": "broken", "litellm_params": {"model": "wattfare/standin/http-502", **wattfare_deployment}},
            {
                "model_name": "outside",
                "litellm_params": {
                    "model": f"openai/{OUTSIDE}",
                    "api_key": "os.environ/OUTSIDE_KEY",
                    "api_base": "os.environ/OUTSIDE_BASE",
                },
            },
        ],
        "litellm_settings": {
            "custom_provider_map": [{"provider": "wattfare", "custom_handler": "wattfare_litellm.wattfare_llm"}]
        },
        "router_settings": {
            "fallbacks": [{"smart": ["outside"]}, {"broken": ["outside"]}],
            "default_fallbacks": ["outside"],
            "context_window_fallbacks": [{"smart": ["outside"]}],
            "content_policy_fallbacks": [{"smart": ["outside"]}],
            "num_retries": 0,
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


@pytest.fixture(scope="session")
def fallback_proxy(
    standin_server: ServerProcess, standin: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("litellm-proxy-fallbacks")
    path = Path(workdir, "config.yaml")
    path.write_text(json.dumps(config(), indent=2))  # JSON is YAML
    env = {
        "WATTFARE_SECRET_KEY": standin_server.secret,
        "WATTFARE_BASE_URL": standin_server.base_url,
        "OUTSIDE_KEY": "sk-the-apps-own",
        "OUTSIDE_BASE": standin.base_url,
    }
    with run_proxy(path, workdir, env) as proxy:
        yield proxy


@pytest.fixture
def wattfare(standin_server: ServerProcess) -> Iterator[Wattfare]:
    with Wattfare(standin_server.secret, standin_server.base_url) as client:
        yield client


def spent(wattfare: Wattfare, user_id: str) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")


def disconnected(wattfare: Wattfare, user_id: str) -> None:
    # Test keys connect a user at their first completion; then the app disconnects them.
    wattfare.user(user_id).chat(model="standin/ok", messages=HI)
    wattfare.user(user_id).disconnect()


def ask(proxy: Proxy, model: str, user_id: str, *, stream: bool, **fields: Any) -> str:
    """The whole answer, read from one response or from a stream."""
    client = proxy.client.chat.completions
    if not stream:
        return client.create(model=model, messages=HI, user=user_id, **fields).choices[0].message.content
    chunks = list(client.create(model=model, messages=HI, user=user_id, stream=True, **fields))
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("refuse", "code"), [(spent, "budget_exceeded"), (disconnected, "not_connected")])
def test_a_refused_user_is_never_served_by_the_fallback_outside_wattfare(
    refuse: Any,
    code: str,
    stream: bool,
    fallback_proxy: Proxy,
    wattfare: Wattfare,
    upstream: Upstream,
    request: pytest.FixtureRequest,
) -> None:
    user_id = f"u_{abs(hash(request.node.nodeid)):x}"
    refuse(wattfare, user_id)
    outside = upstream.requests(OUTSIDE)

    with pytest.raises(openai.BadRequestError) as refused:
        ask(fallback_proxy, "smart", user_id, stream=stream)

    assert refused.value.status_code == 400
    assert code in refused.value.message
    assert upstream.requests(OUTSIDE) == outside, "the fallback outside Wattfare served a refused user"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_busy_user_is_never_served_by_the_fallback_outside_wattfare(
    stream: bool,
    fallback_proxy: Proxy,
    standin_server: ServerProcess,
    wattfare: Wattfare,
    upstream: Upstream,
    request: pytest.FixtureRequest,
) -> None:
    # $0.0082 of a $0.012 cap held by a ten-second request: the proxy's request ($0.0082 more) is busy.
    user_id = f"u_busy_{abs(hash(request.node.nodeid)):x}"
    wattfare.create_session(user_id, monthly_usd="0.012")
    outside, served = upstream.requests(OUTSIDE), upstream.requests("standin/ok")

    with holding(standin_server, user_id, "standin/slow", 4096), pytest.raises(openai.BadRequestError) as refused:
        ask(fallback_proxy, "smart", user_id, stream=stream, max_tokens=4096)

    assert refused.value.status_code == 400
    assert "budget_busy" in refused.value.message
    assert upstream.requests(OUTSIDE) == outside, "the fallback outside Wattfare served a busy user"
    assert upstream.requests("standin/ok") == served


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_upstream_outage_falls_back_to_the_deployment_outside_wattfare(
    stream: bool, fallback_proxy: Proxy, upstream: Upstream
) -> None:
    outside = upstream.requests(OUTSIDE)

    assert ask(fallback_proxy, "broken", "u_proxy_outage", stream=stream)
    assert upstream.requests(OUTSIDE) == outside + 1

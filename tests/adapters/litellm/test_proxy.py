"""The LiteLLM proxy as a subprocess with examples/litellm_proxy_config.yaml, called with the stock `openai` client."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.adapters.litellm.proxy_environment import REPO, Proxy, run_proxy
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare

pytestmark = [
    pytest.mark.xdist_group("litellm"),
    # The first run builds the proxy's venv (a few minutes); later runs reuse it.
    pytest.mark.timeout(1200),
]

CONFIG = REPO / "examples" / "litellm_proxy_config.yaml"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi"}]


# Session-scoped: under xdist, a group's tests may interleave modules, which would restart a module fixture.
@pytest.fixture(scope="session")
def litellm_proxy(wattfare_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    env = {"WATTFARE_SECRET_KEY": wattfare_server.secret, "WATTFARE_BASE_URL": wattfare_server.base_url}
    with run_proxy(CONFIG, tmp_path_factory.mktemp("litellm-proxy"), env) as proxy:
        yield proxy


def ledger(wattfare: Wattfare, user_id: str) -> tuple[int, Decimal]:
    rows = wattfare.usage(user_id).data
    return sum(r.requests for r in rows), sum((r.cost_usd for r in rows), Decimal(0))


def test_the_proxy_serves_a_wattfare_model_charged_to_the_openai_user_field(
    litellm_proxy: Proxy, wattfare: Wattfare, user_id: str
) -> None:
    raw = litellm_proxy.client.chat.completions.with_raw_response.create(
        model="smart", messages=HI, user=user_id, max_tokens=8
    )
    reply = raw.parse()

    assert (reply.choices[0].message.content or "").startswith("Sandbox reply to: Say hi")
    requests, spent = ledger(wattfare, user_id)
    assert requests == 1
    assert spent > 0
    assert Decimal(raw.headers["llm_provider-wattfare-cost-usd"]) == spent
    assert Decimal(raw.headers["x-litellm-response-cost"]) == spent, "LiteLLM's spend tracking sees Wattfare's charge"


def test_the_proxy_streams_and_meters_the_stream(litellm_proxy: Proxy, wattfare: Wattfare, user_id: str) -> None:
    stream = litellm_proxy.client.chat.completions.create(
        model="fast", messages=HI, user=user_id, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Sandbox reply to: Say hi")
    usage = next(c.usage for c in reversed(chunks) if c.usage is not None)
    requests, spent = ledger(wattfare, user_id)
    assert requests == 1
    assert usage.completion_tokens > 0
    assert Decimal(str(usage.model_extra["cost"])) == spent > 0  # type: ignore[index]


def test_tool_calls_pass_through_the_proxy(litellm_proxy: Proxy, user_id: str) -> None:
    tool: ChatCompletionToolParam = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }

    reply = litellm_proxy.client.chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[tool], user=user_id
    )

    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]


def test_a_spent_cap_reaches_openai_clients_as_a_400_naming_budget_exceeded(
    litellm_proxy: Proxy, wattfare: Wattfare, user_id: str
) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")

    with pytest.raises(openai.BadRequestError) as caught:
        litellm_proxy.client.chat.completions.create(model="smart", messages=HI, user=user_id)

    assert caught.value.status_code == 400
    assert "budget_exceeded" in caught.value.message
    assert ledger(wattfare, user_id) == (0, Decimal(0))
    # The proxy stays up for everyone else.
    assert litellm_proxy.client.chat.completions.create(model="smart", messages=HI, user=f"{user_id}_other").choices


def test_a_body_field_that_is_not_a_chat_completions_param_is_refused_by_the_proxy(
    litellm_proxy: Proxy, wattfare: Wattfare, user_id: str
) -> None:
    with pytest.raises(openai.BadRequestError, match="wattfare/ does not send openai_api_key"):
        litellm_proxy.client.chat.completions.create(
            model="smart", messages=HI, user=user_id, extra_body={"openai_api_key": "sk-proj-elsewhere"}
        )

    assert ledger(wattfare, user_id) == (0, Decimal(0))


def test_provider_fields_reach_wattfare_through_the_proxy_under_extra_body(
    litellm_proxy: Proxy, wattfare: Wattfare, user_id: str
) -> None:
    # The proxy passes body fields to LiteLLM as arguments, so the explicit route is an `extra_body` field.
    reply = litellm_proxy.client.chat.completions.create(
        model="smart", messages=HI, user=user_id, extra_body={"extra_body": {"provider": {"sort": "price"}}}
    )

    assert reply.choices[0].message.content
    assert ledger(wattfare, user_id)[0] == 1

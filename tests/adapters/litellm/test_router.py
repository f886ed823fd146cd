"""A LiteLLM Router sharing Wattfare deployments between end users: refusals stay per user, outages fall back."""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.llms.custom_llm import CustomLLM
from litellm.types.router import RouterRateLimitError

from tests.adapters.litellm.conftest import MODEL
from tests.adapters.litellm.request_log import RequestLog
from tests.support.wattfare_server import ServerProcess, free_port, wattfare_process
from wattfare import Wattfare
from wattfare_litellm import WattfareBudgetExceededError, WattfareLLM

pytestmark = pytest.mark.xdist_group("litellm")

# litellm types `Router.completion`'s messages as dicts, `Router.acompletion`'s as TypedDicts: one list serves both.
HI: list[Any] = [{"role": "user", "content": "Say hi"}]
FAST = "openai/gpt-4o-mini"
# Trigger-happy cooldowns: a deployment counted as failing would be benched at the first failure.
STRICT: dict[str, Any] = {"num_retries": 2, "retry_after": 0, "allowed_fails": 0, "cooldown_time": 60}


def shared_group(server: ServerProcess) -> list[dict[str, Any]]:
    """One model group of two deployments on the same Wattfare app, told apart by host name."""
    port = server.base_url.rsplit(":", 1)[1]
    return [
        {
            "model_name": "shared",
            "litellm_params": {
                "model": f"wattfare/{MODEL}",
                "api_key": server.secret,
                "api_base": f"http://{host}:{port}",
            },
        }
        for host in ("127.0.0.1", "localhost")
    ]


def requests_made(wattfare: Wattfare, user_id: str) -> int:
    return sum(row.requests for row in wattfare.usage(user_id).data)


def test_a_spent_cap_is_not_retried_and_does_not_cool_the_deployment_down_for_other_users(
    provider: WattfareLLM, wattfare_server: ServerProcess, wattfare: Wattfare, request_log: RequestLog
) -> None:
    broke, paying = "u_router_broke", "u_router_paying"
    wattfare.create_session(broke, monthly_usd="0.000001")
    router = litellm.Router(model_list=shared_group(wattfare_server), **STRICT)

    for _ in range(4):
        with pytest.raises(WattfareBudgetExceededError):
            router.completion(model="shared", messages=HI, user=broke)
    for _ in range(6):
        reply: Any = router.completion(model="shared", messages=HI, user=paying)
        assert reply.choices[0].message.content

    assert len(request_log.completions(broke)) == 4, "each refused call reached Wattfare once: no retries"
    assert len(request_log.completions(paying)) == 6
    assert requests_made(wattfare, paying) == 6


@pytest.mark.anyio
async def test_a_spent_cap_leaves_an_async_streaming_router_serving_other_users(
    async_provider: WattfareLLM, wattfare_server: ServerProcess, wattfare: Wattfare, request_log: RequestLog
) -> None:
    broke, paying = "u_router_async_broke", "u_router_async_paying"
    wattfare.create_session(broke, monthly_usd="0.000001")
    router = litellm.Router(model_list=shared_group(wattfare_server), **STRICT)

    for _ in range(3):
        with pytest.raises(WattfareBudgetExceededError):
            await router.acompletion(model="shared", messages=HI, user=broke, stream=True)
    for _ in range(4):
        stream: Any = await router.acompletion(model="shared", messages=HI, user=paying, stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert len(request_log.completions(broke)) == 3
    assert len(request_log.completions(paying)) == 4


def test_a_raw_402_would_cool_the_shared_deployments_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The canary for LiteLLM upgrades: why the refusals above are not raised as LiteLLM's 402."""

    class Refusing(CustomLLM):
        def completion(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs["logging_obj"].model_call_details.get("user") == "broke":
                raise litellm.exceptions.PaymentRequiredError(message="cap", model="m", llm_provider="wattfare")
            return litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": "ok"}}])

    monkeypatch.setattr(litellm, "custom_provider_map", [{"provider": "wattfare", "custom_handler": Refusing()}])
    deployments = [
        {"model_name": "shared", "litellm_params": {"model": "wattfare/m", "api_key": "k", "api_base": base}}
        for base in ("http://a", "http://b")
    ]
    router = litellm.Router(model_list=deployments, **STRICT)

    for _ in range(2):
        with pytest.raises(litellm.exceptions.PaymentRequiredError):
            router.completion(model="shared", messages=HI, user="broke")
    with pytest.raises(RouterRateLimitError, match="in cooldown"):
        router.completion(model="shared", messages=HI, user="paying")


def test_an_upstream_outage_is_retried_then_falls_back_to_the_next_group(
    provider: WattfareLLM, credentials: dict[str, str], request_log: RequestLog
) -> None:
    router = litellm.Router(
        model_list=[
            {"model_name": "smart", "litellm_params": {"model": f"wattfare/{MODEL}", **credentials}},
            {"model_name": "fast", "litellm_params": {"model": f"wattfare/{FAST}", **credentials}},
        ],
        fallbacks=[{"smart": ["fast"]}],
        num_retries=1,  # LiteLLM backs off between retries; one is enough to count
        retry_after=0,
    )

    # The magic string is in the messages, so the fallback's provider fails too: this counts the attempts.
    with pytest.raises(litellm.BadGatewayError, match="Fallback to fast also failed"):
        router.completion(
            model="smart", messages=[{"role": "user", "content": "Hi [sandbox:upstream_error]"}], user="u_outage"
        )

    assert Counter(r.model for r in request_log.completions("u_outage")) == {MODEL: 2, FAST: 2}


@pytest.fixture
def provider_down(tmp_path: Path) -> Iterator[ServerProcess]:
    """A Wattfare whose model provider is unreachable: every completion is a 502 `upstream`."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = {
        "WATTFARE_UPSTREAM": "openai-compatible",
        "WATTFARE_UPSTREAM_URL": dead,
        "WATTFARE_UPSTREAM_KEY": "sk-unused",
        "WATTFARE_TEST_UPSTREAM": "live",
    }
    with wattfare_process(tmp_path, env=env) as server:
        yield server


def test_a_fallback_serves_the_user_when_a_groups_provider_is_down(
    provider: WattfareLLM,
    provider_down: ServerProcess,
    credentials: dict[str, str],
    wattfare: Wattfare,
    user_id: str,
    request_log: RequestLog,
) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "smart",
                "litellm_params": {
                    "model": f"wattfare/{MODEL}",
                    "api_key": provider_down.secret,
                    "api_base": provider_down.base_url,
                },
            },
            {"model_name": "fast", "litellm_params": {"model": f"wattfare/{FAST}", **credentials}},
        ],
        fallbacks=[{"smart": ["fast"]}],
        num_retries=1,
        retry_after=0,
    )

    reply: Any = router.completion(model="smart", messages=HI, user=user_id)

    assert reply.choices[0].message.content.startswith("Sandbox reply to")
    assert reply._hidden_params["additional_headers"]["llm_provider-wattfare-request-id"]
    assert Counter(r.model for r in request_log.completions(user_id)) == {MODEL: 2, FAST: 1}
    assert [(row.model, row.requests) for row in wattfare.usage(user_id).data] == [(FAST, 1)]

"""A Router never falls back from a per-user refusal, under any of LiteLLM's fallback settings; outages still do.

A fallback from a `wattfare/…` deployment to one outside Wattfare would serve a user whose cap is spent
(or who never connected) anyway, billed to the app. The deployments here are real: `wattfare/standin/…`
through a `wattfare serve` process whose provider is the recording stand-in, and a fallback `openai/…`
deployment pointed straight at the stand-in under its own model name, so the stand-in's count for that
name says whether the fallback was ever called.

A busy budget (the user's other requests in flight hold their cap) is per-user too, yet waiting heals it:
it is retried as often as the Router would retry (by the SDK, inside the attempt), and never falls back.
Those tests run on a server of their own that refuses a busy request at once instead of first waiting for
the holds in flight to settle, with one of the user's requests held open beside the Router's.
"""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import litellm
import pytest

import wattfare_litellm
from tests.adapters.held_request import holding
from tests.adapters.litellm.request_log import AsyncLoggingTransport, LoggingTransport, RequestLog
from tests.adapters.upstream import Upstream
from tests.support.standin_upstream import StandIn
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare import BudgetBusyError, BudgetExceededError, Wattfare
from wattfare_litellm import (
    WattfareBudgetBusyError,
    WattfareBudgetExceededError,
    WattfareLLM,
    WattfareNotConnectedError,
)

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("standin")]

SERVED = "standin/ok"
OUTAGE = "standin/http-502"
SLOW = "standin/timeout"
OUTSIDE = "standin/outside-wattfare"
MODES = ["sync", "stream", "async", "astream"]

FALLBACK_SETTINGS: dict[str, dict[str, Any]] = {
    "fallbacks": {"fallbacks": [{"wattfare/x": ["gpt-x"]}]},
    "default_fallbacks": {"default_fallbacks": ["gpt-x"]},
    "context_window_fallbacks": {"context_window_fallbacks": [{"wattfare/x": ["gpt-x"]}]},
    "content_policy_fallbacks": {"content_policy_fallbacks": [{"wattfare/x": ["gpt-x"]}]},
    "all_of_them": {
        "fallbacks": [{"wattfare/x": ["gpt-x"]}],
        "default_fallbacks": ["gpt-x"],
        "context_window_fallbacks": [{"wattfare/x": ["gpt-x"]}],
        "content_policy_fallbacks": [{"wattfare/x": ["gpt-x"]}],
    },
}


@pytest.fixture
async def handler(request_log: RequestLog, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WattfareLLM]:
    """The registered provider, logging every request it sends to Wattfare (sync and async)."""
    monkeypatch.setattr(litellm, "custom_provider_map", list(litellm.custom_provider_map))
    with httpx.Client(transport=LoggingTransport(request_log)) as http:
        async with httpx.AsyncClient(transport=AsyncLoggingTransport(request_log)) as async_http:
            yield wattfare_litellm.register(WattfareLLM(http_client=http, async_http_client=async_http))


@pytest.fixture
def wattfare(standin_server: ServerProcess) -> Iterator[Wattfare]:
    with Wattfare(standin_server.secret, standin_server.base_url) as client:
        yield client


def router(
    server: ServerProcess, standin: StandIn, wattfare_model: str, *, num_retries: int = 2, **settings: Any
) -> litellm.Router:
    """`wattfare/x` through Wattfare, and `gpt-x`: the same provider reached directly, billed to the app."""
    model_list = [
        {
            "model_name": "wattfare/x",
            "litellm_params": {
                "model": f"wattfare/{wattfare_model}",
                "api_key": server.secret,
                "api_base": server.base_url,
            },
        },
        {
            "model_name": "gpt-x",
            "litellm_params": {
                "model": f"openai/{OUTSIDE}",
                "api_key": "sk-the-apps-own",
                "api_base": standin.base_url,
            },
        },
    ]
    return litellm.Router(model_list=model_list, num_retries=num_retries, retry_after=0, **settings)


async def send(chosen: litellm.Router, mode: str, user_id: str, **fields: Any) -> str:
    """The answer's text, for a Router call made the way `mode` says (with request `fields`)."""
    request: dict[str, Any] = {
        "model": "wattfare/x",
        "messages": [{"role": "user", "content": "Hi"}],
        "user": user_id,
        **fields,
    }
    stream = mode in ("stream", "astream")
    if mode in ("sync", "stream"):
        reply: Any = chosen.completion(stream=stream, **request)
    else:
        reply = await chosen.acompletion(stream=stream, **request)
    if not stream:
        return reply.choices[0].message.content
    if mode == "stream":
        return "".join(chunk.choices[0].delta.content or "" for chunk in reply if chunk.choices)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in reply if chunk.choices])


def spent(wattfare: Wattfare, user_id: str) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")


def disconnected(wattfare: Wattfare, user_id: str) -> None:
    # Test keys connect a user at their first completion; then the app disconnects them.
    wattfare.user(user_id).chat(model=SERVED, messages=[{"role": "user", "content": "Hi"}])
    wattfare.user(user_id).disconnect()


def ledger(wattfare: Wattfare, user_id: str) -> int:
    return sum(row.requests for row in wattfare.usage(user_id).data)


REFUSALS = [(spent, WattfareBudgetExceededError), (disconnected, WattfareNotConnectedError)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("settings", FALLBACK_SETTINGS.values(), ids=FALLBACK_SETTINGS.keys())
@pytest.mark.parametrize(("refuse", "refusal"), REFUSALS, ids=["budget_exceeded", "not_connected"])
async def test_a_refused_user_is_never_served_by_a_fallback(
    refuse: Any,
    refusal: type[Exception],
    settings: dict[str, Any],
    mode: str,
    handler: WattfareLLM,
    standin_server: ServerProcess,
    standin: StandIn,
    wattfare: Wattfare,
    upstream: Upstream,
    request_log: RequestLog,
    request: pytest.FixtureRequest,
) -> None:
    user_id = f"u_{abs(hash(request.node.nodeid)):x}"
    refuse(wattfare, user_id)
    outside, served, charged = upstream.requests(OUTSIDE), upstream.requests(SERVED), ledger(wattfare, user_id)

    with pytest.raises(refusal) as refused:
        await send(router(standin_server, standin, SERVED, **settings), mode, user_id)

    assert refused.value.app_user_id == user_id  # pyright: ignore[reportAttributeAccessIssue]
    assert len(request_log.completions(user_id)) == 1, "the refusal was retried"
    assert upstream.requests(OUTSIDE) == outside, "the fallback outside Wattfare served a refused user"
    assert upstream.requests(SERVED) == served
    assert ledger(wattfare, user_id) == charged


GENERIC_FALLBACKS = {key: FALLBACK_SETTINGS[key] for key in ("fallbacks", "default_fallbacks", "all_of_them")}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("settings", GENERIC_FALLBACKS.values(), ids=GENERIC_FALLBACKS.keys())
async def test_an_upstream_outage_still_falls_back(
    settings: dict[str, Any],
    mode: str,
    handler: WattfareLLM,
    standin_server: ServerProcess,
    standin: StandIn,
    upstream: Upstream,
) -> None:
    outside, failing = upstream.requests(OUTSIDE), upstream.requests(OUTAGE)
    # No retries: LiteLLM backs off between them, and test_router.py counts them.
    answer = await send(router(standin_server, standin, OUTAGE, num_retries=0, **settings), mode, "u_outage")

    assert answer
    assert upstream.requests(OUTAGE) == failing + 1
    assert upstream.requests(OUTSIDE) == outside + 1


@pytest.mark.parametrize("mode", MODES)
async def test_an_upstream_timeout_still_falls_back(
    mode: str, handler: WattfareLLM, standin_server: ServerProcess, standin: StandIn, upstream: Upstream
) -> None:
    outside = upstream.requests(OUTSIDE)
    chosen = router(standin_server, standin, SLOW, num_retries=0, fallbacks=[{"wattfare/x": ["gpt-x"]}], timeout=1)
    answer = await send(chosen, mode, "u_timeout")

    assert answer
    assert upstream.requests(OUTSIDE) == outside + 1


# ---------------------------------------------------------------- a busy budget

HOLD_SLOW = "standin/slow"  # 50 tokens, 200 ms apart: holds its hold for 10 s
HOLD_BRIEF = "standin/sonnet"  # 200 tokens over 2 s, at premium prices
# What the Router's request holds: 4,096 tokens at the stand-in's $2/M, about $0.0082.
ROUTED = {"max_tokens": 4096}


@pytest.fixture(scope="module")
def busy_server(standin: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A Wattfare whose busy requests are refused at once (no wait for holds in flight to settle)."""
    env = {
        "WATTFARE_UPSTREAM": "openai-compatible",
        "WATTFARE_UPSTREAM_URL": standin.base_url,
        "WATTFARE_UPSTREAM_KEY": "provider-key",
        "WATTFARE_TEST_UPSTREAM": "live",
        "WATTFARE_BUSY_WAIT_SECONDS": "0",
    }
    with wattfare_process(tmp_path_factory.mktemp("wattfare-busy"), env=env) as server:
        yield server


def busy_user(server: ServerProcess, request: pytest.FixtureRequest, cap: str) -> str:
    user_id = f"u_busy_{abs(hash(request.node.nodeid)):x}"
    with Wattfare(server.secret, server.base_url) as wf:
        wf.create_session(user_id, monthly_usd=cap)
    return user_id


def test_a_busy_budget_is_refused_by_the_server_as_busy_not_exceeded(
    busy_server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    """What the Router tests below rely on: a $0.012 cap with $0.0082 held leaves a $0.0082 request busy."""
    user_id = busy_user(busy_server, request, "0.012")
    wf = Wattfare(busy_server.secret, busy_server.base_url, max_retries=0)
    with wf, holding(busy_server, user_id, HOLD_SLOW, 4096):
        status = wf.user(user_id).status()
        with pytest.raises(BudgetBusyError) as busy:
            wf.user(user_id).chat(model=SERVED, messages=[{"role": "user", "content": "Hi"}], **ROUTED)

    assert busy.value.retry_after is not None
    assert not isinstance(busy.value, BudgetExceededError)
    # The SDK's status shows what the request in flight holds, and what that leaves.
    assert status.reserved_usd is not None
    assert Decimal("0.008192") <= status.reserved_usd < Decimal("0.0085")
    assert status.remaining_usd == Decimal("0.012") - status.spent_usd - status.reserved_usd


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("settings", FALLBACK_SETTINGS.values(), ids=FALLBACK_SETTINGS.keys())
async def test_a_busy_user_is_never_served_by_a_fallback(
    settings: dict[str, Any],
    mode: str,
    handler: WattfareLLM,
    busy_server: ServerProcess,
    standin: StandIn,
    upstream: Upstream,
    request_log: RequestLog,
    request: pytest.FixtureRequest,
) -> None:
    user_id = busy_user(busy_server, request, "0.012")
    outside, served = upstream.requests(OUTSIDE), upstream.requests(SERVED)
    chosen = router(busy_server, standin, SERVED, num_retries=0, **settings)

    with holding(busy_server, user_id, HOLD_SLOW, 4096), pytest.raises(WattfareBudgetBusyError) as refused:
        await send(chosen, mode, user_id, **ROUTED)

    assert (refused.value.app_user_id, refused.value.code, refused.value.wattfare_status_code) == (
        user_id,
        "budget_busy",
        429,
    )
    assert len(request_log.completions(user_id)) == 1, "num_retries=0: the busy refusal was retried"
    assert upstream.requests(OUTSIDE) == outside, "the fallback outside Wattfare served a busy user"
    assert upstream.requests(SERVED) == served


@pytest.mark.parametrize("mode", MODES)
async def test_a_router_retries_a_busy_user_through_the_sdk_until_the_budget_clears(
    mode: str,
    handler: WattfareLLM,
    busy_server: ServerProcess,
    standin: StandIn,
    upstream: Upstream,
    request_log: RequestLog,
    request: pytest.FixtureRequest,
) -> None:
    # The held request holds $0.015 of a $0.02 cap for two seconds, then settles for $0.003.
    user_id = busy_user(busy_server, request, "0.02")
    outside, served = upstream.requests(OUTSIDE), upstream.requests(SERVED)
    chosen = router(busy_server, standin, SERVED, num_retries=5, **FALLBACK_SETTINGS["all_of_them"])

    with holding(busy_server, user_id, HOLD_BRIEF, 1000):
        answer = await send(chosen, mode, user_id, **ROUTED)

    assert answer
    sent = len(request_log.completions(user_id))
    assert 2 <= sent <= 6, f"{sent} requests: the busy refusal was not retried, or retried past num_retries"
    assert upstream.requests(SERVED) == served + 1
    assert upstream.requests(OUTSIDE) == outside


@pytest.mark.parametrize("mode", MODES)
async def test_a_user_still_busy_after_the_routers_retries_gets_the_busy_refusal(
    mode: str,
    handler: WattfareLLM,
    busy_server: ServerProcess,
    standin: StandIn,
    upstream: Upstream,
    request_log: RequestLog,
    request: pytest.FixtureRequest,
) -> None:
    user_id = busy_user(busy_server, request, "0.012")
    outside = upstream.requests(OUTSIDE)
    chosen = router(busy_server, standin, SERVED, num_retries=1, fallbacks=[{"wattfare/x": ["gpt-x"]}])

    with holding(busy_server, user_id, HOLD_SLOW, 4096), pytest.raises(WattfareBudgetBusyError) as refused:
        await send(chosen, mode, user_id, **ROUTED)

    assert refused.value.retry_after is not None
    assert len(request_log.completions(user_id)) == 2, "one try and the Router's one retry, made by the SDK"
    assert upstream.requests(OUTSIDE) == outside

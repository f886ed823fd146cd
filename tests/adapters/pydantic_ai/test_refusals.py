"""Wattfare's refusals reach a Pydantic AI app once, as Pydantic AI's own errors carrying Wattfare's code."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic_ai import Agent, ModelHTTPError, ModelMessage, ModelResponse, TextPart
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    ModelServerError,
)
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel

from tests.adapters.openai_request_log import RequestLog
from tests.adapters.pydantic_ai.conftest import MODEL, charged_requests
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_pydantic_ai import WattfareProvider, not_a_user_refusal

pytestmark = [pytest.mark.xdist_group("pydantic_ai"), pytest.mark.anyio]


def spent(wattfare: Wattfare, user_id: str) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")


def disconnected(wattfare: Wattfare, user_id: str) -> None:
    # Test keys connect a user at their first completion; then the app disconnects them.
    wattfare.user(user_id).chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    wattfare.user(user_id).disconnect()


REFUSALS = [(spent, "budget_exceeded"), (disconnected, "not_connected")]


async def run(agent: Agent[None, str], streamed: bool, prompt: str = "Hi") -> str:
    if not streamed:
        return (await agent.run(prompt)).output
    async with agent.run_stream(prompt) as stream:
        return await stream.get_output()


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
@pytest.mark.parametrize(("refuse", "code"), REFUSALS, ids=[code for _, code in REFUSALS])
async def test_a_refused_user_gets_one_model_http_error_with_wattfares_code(
    refuse: Callable[[Wattfare, str], None],
    code: str,
    streamed: bool,
    provider: WattfareProvider,
    wattfare: Wattfare,
    request_log: RequestLog,
    user_id: str,
) -> None:
    refuse(wattfare, user_id)
    charged = charged_requests(wattfare, user_id)
    agent = Agent(OpenAIChatModel(MODEL, provider=provider.for_user(user_id)))

    with pytest.raises(ModelHTTPError) as refused:
        await run(agent, streamed)

    assert isinstance(refused.value, ModelQuotaExceededError)
    assert refused.value.status_code == 402
    assert refused.value.provider_error_code == code
    assert refused.value.provider_retry_hint is False  # Wattfare's `x-should-retry: false`
    assert refused.value.headers is not None
    assert refused.value.headers["wattfare-request-id"].startswith("req_")
    assert len(request_log.completions(user_id)) == 1, "the refusal was retried"
    assert charged_requests(wattfare, user_id) == charged


async def test_a_spent_cap_says_when_it_resets(provider: WattfareProvider, wattfare: Wattfare, user_id: str) -> None:
    spent(wattfare, user_id)

    with pytest.raises(ModelHTTPError) as refused:
        await Agent(OpenAIChatModel(MODEL, provider=provider.for_user(user_id))).run("Hi")

    assert isinstance(refused.value.body, dict)
    assert refused.value.body["resetsAt"] == wattfare.user(user_id).status().resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_an_unknown_model_and_a_bad_key_are_pydantic_ais_categories_sent_once(
    provider: WattfareProvider, wattfare_server: ServerProcess, request_log: RequestLog, user_id: str
) -> None:
    with pytest.raises(ModelNotFoundError) as unknown:
        await Agent(OpenAIChatModel("nobody/no-such-model", provider=provider.for_user(user_id))).run("Hi")
    bad_key = WattfareProvider(user_id=user_id, api_key="sk_test_revoked", base_url=wattfare_server.base_url)
    async with bad_key:  # it made its own HTTP client: leaving closes it
        with pytest.raises(ModelAuthenticationError) as unauthenticated:
            await Agent(OpenAIChatModel(MODEL, provider=bad_key)).run("Hi")

    assert isinstance(unknown.value, ModelHTTPError)
    assert (unknown.value.status_code, unknown.value.provider_error_code) == (404, "model_not_found")
    assert isinstance(unauthenticated.value, ModelHTTPError)
    assert (unauthenticated.value.status_code, unauthenticated.value.provider_error_code) == (401, "auth")
    assert len(request_log.completions(user_id)) == 1  # the 404; the bad key's client is not logged


async def test_a_provider_failure_is_retried_by_the_client_unless_max_retries_is_zero(
    provider: WattfareProvider, request_log: RequestLog, user_id: str
) -> None:
    agent = Agent(OpenAIChatModel(MODEL, provider=provider.for_user(user_id)))

    with pytest.raises(ModelServerError) as retried:
        await agent.run("Hi [sandbox:upstream_error]")
    tried = len(request_log.completions(user_id))
    with pytest.raises(ModelServerError) as once:
        await agent.run("Hi [sandbox:upstream_error]", model_settings={"max_retries": 0})

    assert retried.value.provider_error_code == once.value.provider_error_code == "upstream"
    assert tried == 3  # the openai client's default: two retries, as Wattfare's own client
    assert len(request_log.completions(user_id)) == tried + 1


def backup(served: list[str]) -> FunctionModel:
    """A model outside Wattfare (one the app pays for), recording whom it served."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        served.append("backup")
        return ModelResponse(parts=[TextPart("answered by the backup model")])

    return FunctionModel(answer)


async def test_a_fallback_model_never_serves_a_refused_user(
    provider: WattfareProvider, wattfare: Wattfare, request_log: RequestLog, user_id: str
) -> None:
    spent(wattfare, user_id)
    served: list[str] = []
    model = FallbackModel(
        OpenAIChatModel(MODEL, provider=provider.for_user(user_id)), backup(served), fallback_on=not_a_user_refusal
    )

    with pytest.raises(ModelHTTPError) as refused:
        await Agent(model).run("Hi")

    assert refused.value.provider_error_code == "budget_exceeded"
    assert served == []
    assert len(request_log.completions(user_id)) == 1


async def test_a_provider_failure_still_falls_back(provider: WattfareProvider, user_id: str) -> None:
    served: list[str] = []
    primary = OpenAIChatModel(MODEL, provider=provider.for_user(user_id))
    model = FallbackModel(primary, backup(served), fallback_on=not_a_user_refusal)

    result = await Agent(model).run("Hi [sandbox:upstream_error]", model_settings={"max_retries": 0})

    assert result.output == "answered by the backup model"
    assert served == ["backup"]


async def test_without_the_predicate_pydantic_ais_default_would_serve_a_refused_user_elsewhere(
    provider: WattfareProvider, wattfare: Wattfare, user_id: str
) -> None:
    # Why `not_a_user_refusal` exists: FallbackModel's default `fallback_on` catches every ModelAPIError.
    spent(wattfare, user_id)
    served: list[str] = []
    model = FallbackModel(OpenAIChatModel(MODEL, provider=provider.for_user(user_id)), backup(served))

    result = await Agent(model).run("Hi")

    assert (result.output, served) == ("answered by the backup model", ["backup"])


async def test_a_stream_stopped_mid_way_raises_a_model_api_error_with_wattfares_code(
    provider: WattfareProvider, request_log: RequestLog, user_id: str
) -> None:
    agent = Agent(OpenAIChatModel(MODEL, provider=provider.for_user(user_id)))
    received: list[str] = []

    async def read() -> None:
        async with agent.run_stream("Hi [sandbox:midstream_error]") as stream:
            async for piece in stream.stream_text(delta=True, debounce_by=None):
                received.append(piece)

    with pytest.raises(ModelAPIError) as stopped:
        await read()

    assert received, "the stream stopped after some text"
    assert stopped.value.in_stream
    assert stopped.value.provider_error_code == "upstream"
    assert len(request_log.completions(user_id)) == 1  # part of the answer was delivered: never retried

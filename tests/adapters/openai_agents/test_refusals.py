"""Wattfare's refusals reach an Agents SDK app once, as the `openai.APIStatusError` the SDK raises."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from agents import Agent, ModelSettings, Runner
from agents.retry import ModelRetrySettings, retry_policies

from tests.adapters.openai_agents.conftest import MODEL, charged_requests, config_for
from tests.adapters.openai_request_log import RequestLog
from wattfare import Wattfare
from wattfare_agents import WattfareModelProvider

pytestmark = [pytest.mark.xdist_group("openai_agents"), pytest.mark.anyio]


def spent(wattfare: Wattfare, user_id: str) -> None:
    wattfare.create_session(user_id, monthly_usd="0.000001")


def disconnected(wattfare: Wattfare, user_id: str) -> None:
    # Test keys connect a user at their first completion; then the app disconnects them.
    wattfare.user(user_id).chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    wattfare.user(user_id).disconnect()


REFUSALS = [(spent, "budget_exceeded"), (disconnected, "not_connected")]


def runner_retries(policy: object) -> ModelSettings:
    return ModelSettings(retry=ModelRetrySettings(max_retries=3, backoff={"initial_delay": 0}, policy=policy))  # pyright: ignore[reportArgumentType]


# The runner's own retries are opt-in; turned on, they follow Wattfare's `x-should-retry: false` (a hard veto in the
# SDK), even under a policy that names 402 among the statuses to retry.
RUNNER_RETRIES = {
    "default": ModelSettings(),
    "runner_retries": runner_retries(retry_policies.provider_suggested()),
    "runner_retries_naming_402": runner_retries(
        retry_policies.any(retry_policies.provider_suggested(), retry_policies.http_status([402, 429, 502]))
    ),
}


async def run(
    agent: Agent, provider: WattfareModelProvider, user_id: str, streamed: bool, prompt: str = "Hi"
) -> object:
    if not streamed:
        return (await Runner.run(agent, prompt, run_config=config_for(provider, user_id))).final_output
    result = Runner.run_streamed(agent, prompt, run_config=config_for(provider, user_id))
    async for _ in result.stream_events():
        pass
    return result.final_output


@pytest.mark.parametrize("settings", RUNNER_RETRIES.values(), ids=RUNNER_RETRIES.keys())
@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize(("refuse", "code"), REFUSALS, ids=[code for _, code in REFUSALS])
async def test_a_refused_user_gets_one_api_status_error_with_wattfares_code(
    refuse: Callable[[Wattfare, str], None],
    code: str,
    streamed: bool,
    settings: ModelSettings,
    provider: WattfareModelProvider,
    wattfare: Wattfare,
    request_log: RequestLog,
    user_id: str,
) -> None:
    refuse(wattfare, user_id)
    charged = charged_requests(wattfare, user_id)
    agent = Agent(name="Assistant", model=MODEL, model_settings=settings)

    with pytest.raises(openai.APIStatusError) as refused:
        await run(agent, provider, user_id, streamed)

    assert refused.value.status_code == 402
    assert refused.value.code == code
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert refused.value.response.headers["wattfare-request-id"].startswith("req_")
    assert len(request_log.completions(user_id)) == 1, "the refusal was retried"
    assert charged_requests(wattfare, user_id) == charged


async def test_a_spent_cap_says_when_it_resets(
    provider: WattfareModelProvider, wattfare: Wattfare, user_id: str
) -> None:
    spent(wattfare, user_id)

    with pytest.raises(openai.APIStatusError) as refused:
        await run(Agent(name="Assistant", model=MODEL), provider, user_id, streamed=False)

    assert isinstance(refused.value.body, dict)
    assert refused.value.body["resetsAt"] == wattfare.user(user_id).status().resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_an_unknown_model_is_openais_not_found_error_sent_once(
    provider: WattfareModelProvider, request_log: RequestLog, user_id: str
) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        await run(Agent(name="Assistant", model="nobody/no-such-model"), provider, user_id, streamed=False)

    assert unknown.value.code == "model_not_found"
    assert len(request_log.completions(user_id)) == 1


async def test_a_provider_failure_is_retried_by_the_client_as_wattfares_own_client_would(
    provider: WattfareModelProvider, request_log: RequestLog, user_id: str
) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        await run(
            Agent(name="Assistant", model=MODEL), provider, user_id, streamed=False, prompt="[sandbox:upstream_error]"
        )

    assert (failed.value.status_code, failed.value.code) == (502, "upstream")
    assert len(request_log.completions(user_id)) == 3  # the openai client's default: two retries


async def test_the_runners_retries_when_turned_on_do_retry_a_provider_failure(
    provider: WattfareModelProvider, request_log: RequestLog, user_id: str
) -> None:
    # What makes the `runner_retries` case above meaningful: the same settings retry what may be retried.
    agent = Agent(name="Assistant", model=MODEL, model_settings=RUNNER_RETRIES["runner_retries_naming_402"])

    with pytest.raises(openai.InternalServerError):
        await run(agent, provider, user_id, streamed=False, prompt="[sandbox:upstream_error]")

    # More than the client's own three attempts: the runner retried too (how the SDK splits them is its own).
    assert len(request_log.completions(user_id)) > 3


async def test_a_stream_stopped_mid_way_raises_an_api_error_with_wattfares_code(
    provider: WattfareModelProvider, request_log: RequestLog, user_id: str
) -> None:
    with pytest.raises(openai.APIError) as stopped:
        await run(
            Agent(name="Assistant", model=MODEL),
            provider,
            user_id,
            streamed=True,
            prompt="Hi [sandbox:midstream_error]",
        )

    assert not isinstance(stopped.value, openai.APIStatusError)  # an error event inside a 200 stream
    assert stopped.value.code == "upstream"
    assert len(request_log.completions(user_id)) == 1  # part of the answer was delivered: never retried

"""WattfareModelProvider on a one-time grant against a real `wattfare serve` process: two runs, then the refusal."""

from __future__ import annotations

import openai
import pytest
from agents import Agent, RunConfig, Runner

from tests.adapters.openai_agents.conftest import MODEL
from tests.adapters.openai_request_log import RequestLog
from wattfare import Wattfare
from wattfare_agents import WattfareModelProvider

pytestmark = [pytest.mark.xdist_group("openai_agents"), pytest.mark.anyio]


async def test_a_grant_of_two_requests_serves_two_runs_then_refuses_with_grant_invalid(
    provider: WattfareModelProvider, wattfare: Wattfare, request_log: RequestLog
) -> None:
    token = wattfare.create_test_grant(2).grant_token
    agent = Agent(name="Assistant", model=MODEL)
    config = RunConfig(model_provider=provider.for_grant(token), tracing_disabled=True)

    first = await Runner.run(agent, "Hi", run_config=config)
    streamed = Runner.run_streamed(agent, "Hi", run_config=config)
    async for _ in streamed.stream_events():
        pass
    with pytest.raises(openai.APIStatusError) as refused:
        await Runner.run(agent, "Hi", run_config=config)

    assert str(first.final_output).startswith("Sandbox reply to: Hi")
    assert str(streamed.final_output).startswith("Sandbox reply to: Hi")
    assert (refused.value.status_code, refused.value.code) == (402, "grant_invalid")
    assert len(request_log.completions()) == 3, "the refusal was retried"

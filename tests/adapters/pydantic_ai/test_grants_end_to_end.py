"""WattfareProvider on a one-time grant against a real `wattfare serve` process: two requests, then the refusal."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent, ModelHTTPError
from pydantic_ai.models.openai import OpenAIChatModel

from tests.adapters.openai_request_log import RequestLog
from tests.adapters.pydantic_ai.conftest import MODEL
from wattfare import Wattfare
from wattfare_pydantic_ai import WattfareProvider

pytestmark = [pytest.mark.xdist_group("pydantic_ai"), pytest.mark.anyio]


async def test_a_grant_of_two_requests_serves_two_runs_then_refuses_with_grant_invalid(
    provider: WattfareProvider, wattfare: Wattfare, request_log: RequestLog
) -> None:
    token = wattfare.create_test_grant(2).grant_token
    agent = Agent(OpenAIChatModel(MODEL, provider=provider.for_grant(token)))

    first = (await agent.run("Hi")).output
    async with agent.run_stream("Hi") as stream:
        second = await stream.get_output()
    with pytest.raises(ModelHTTPError) as refused:
        await agent.run("Hi")

    assert first.startswith("Sandbox reply to: Hi")
    assert second.startswith("Sandbox reply to: Hi")
    assert (refused.value.status_code, refused.value.provider_error_code) == (402, "grant_invalid")
    assert len(request_log.completions()) == 3, "the refusal was retried"
    assert [sent.app_user_id for sent in request_log.completions()] == [None, None, None]

"""WattfareModelProvider and wattfare_model charged to a one-time grant, without a server.

The openai client under the provider is given an `httpx2.MockTransport` that plays a tiny Wattfare.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from agents import Agent, RunConfig, Runner

from wattfare import UsageError
from wattfare_agents import WattfareModelProvider, wattfare_model

pytestmark = pytest.mark.anyio

KEY = "sk_test_offline"
BASE_URL = "http://wattfare.test"
MODEL = "openai/gpt-4o-mini"
GRANT = "wfg_" + "g" * 43
OTHER_GRANT = "wfg_" + "h" * 43

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


class FakeWattfare:
    """Answers chat completions (or replays scripted responses), recording each request."""

    def __init__(self, *scripted: httpx2.Response) -> None:
        self.scripted = list(scripted)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.scripted.pop(0) if self.scripted else httpx2.Response(200, json=COMPLETION)

    @property
    def payers(self) -> list[tuple[str | None, str | None]]:
        """Each request's (Wattfare-User, Wattfare-Grant)."""
        return [(r.headers.get("wattfare-user"), r.headers.get("wattfare-grant")) for r in self.requests]

    def openai_client(self) -> openai.AsyncOpenAI:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        return openai.AsyncOpenAI(api_key=KEY, base_url=f"{BASE_URL}/api/v1", http_client=http, max_retries=3)

    def provider(self, **identity: Any) -> WattfareModelProvider:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        return WattfareModelProvider(api_key=KEY, base_url=BASE_URL, http_client=http, **identity)


async def ask(provider: WattfareModelProvider) -> str:
    agent = Agent(name="Assistant", model=MODEL)
    result = await Runner.run(agent, "Hi", run_config=RunConfig(model_provider=provider, tracing_disabled=True))
    return str(result.final_output)


async def test_a_grants_provider_names_the_grant_and_no_user() -> None:
    fake = FakeWattfare()

    assert await ask(fake.provider(grant=GRANT)) == "Hi!"
    assert fake.payers == [(None, GRANT)]


async def test_per_grant_and_per_user_copies_name_only_their_own_payer() -> None:
    fake = FakeWattfare()
    on_user = fake.provider(user_id="u_parent")

    on_grant = on_user.for_grant(GRANT)
    await ask(on_grant)
    await ask(on_grant.for_user("u_child"))
    await ask(on_grant.for_grant(OTHER_GRANT))

    assert fake.payers == [(None, GRANT), ("u_child", None), (None, OTHER_GRANT)]
    assert on_grant.user_id is None


async def test_wattfare_model_takes_a_grant_instead_of_a_user() -> None:
    fake = FakeWattfare()
    agent = Agent(name="Assistant", model=wattfare_model(MODEL, grant=GRANT, openai_client=fake.openai_client()))

    result = await Runner.run(agent, "Hi", run_config=RunConfig(tracing_disabled=True))

    assert result.final_output == "Hi!"
    assert fake.payers == [(None, GRANT)]


def test_wattfare_model_needs_exactly_one_payer() -> None:
    client = FakeWattfare().openai_client()

    with pytest.raises(UsageError, match="not both"):
        wattfare_model(MODEL, user_id="u1", grant=GRANT, openai_client=client)
    with pytest.raises(UsageError, match="name who pays"):
        wattfare_model(MODEL, openai_client=client)


@pytest.mark.parametrize(
    ("identity", "problem"),
    [({"user_id": "u1", "grant": GRANT}, "not both"), ({"grant": ""}, "grant token"), ({"grant": "wfg_é"}, "grant")],
    ids=["both", "empty_grant", "non_ascii_grant"],
)
def test_a_mistake_naming_the_payer_is_a_usage_error_before_any_request(identity: dict[str, str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        FakeWattfare().provider(**identity)


async def test_a_spent_grant_reaches_the_run_once_with_wattfares_code() -> None:
    error = {"code": "grant_invalid", "message": "This grant is used up.", "type": "insufficient_quota", "param": None}
    refusal = httpx2.Response(402, json={"error": error}, headers={"x-should-retry": "false"})
    fake = FakeWattfare(refusal, refusal)

    with pytest.raises(openai.APIStatusError) as refused:
        await ask(fake.provider(grant=GRANT))

    assert (refused.value.status_code, refused.value.code) == (402, "grant_invalid")
    assert len(fake.requests) == 1, "the refusal was retried"

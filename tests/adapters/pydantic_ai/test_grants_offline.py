"""WattfareProvider charged to a one-time grant, without a server: the header, per-grant copies, the refusal.

The openai client under the provider is given an `httpx2.MockTransport` that plays a tiny Wattfare.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from pydantic_ai import Agent, ModelHTTPError
from pydantic_ai.exceptions import ModelQuotaExceededError
from pydantic_ai.models.openai import OpenAIChatModel

from wattfare import UsageError
from wattfare_pydantic_ai import USER_REFUSAL_CODES, WattfareProvider, not_a_user_refusal

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

    def provider(self, **identity: Any) -> WattfareProvider:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        return WattfareProvider(api_key=KEY, base_url=BASE_URL, http_client=http, **identity)


async def ask(provider: WattfareProvider) -> str:
    return (await Agent(OpenAIChatModel(MODEL, provider=provider)).run("Hi")).output


async def test_a_grants_provider_names_the_grant_and_no_user() -> None:
    fake = FakeWattfare()

    assert await ask(fake.provider(grant=GRANT)) == "Hi!"

    assert fake.payers == [(None, GRANT)]
    assert "wattfare_grant" not in json.loads(fake.requests[0].content)


async def test_per_grant_and_per_user_copies_name_only_their_own_payer_on_one_pool() -> None:
    fake = FakeWattfare()
    on_user = fake.provider(user_id="u_parent")

    on_grant = on_user.for_grant(GRANT)
    await ask(on_grant)
    await ask(on_grant.for_user("u_child"))
    await ask(on_grant.for_grant(OTHER_GRANT))

    assert fake.payers == [(None, GRANT), ("u_child", None), (None, OTHER_GRANT)]
    assert (on_grant.user_id, on_grant.client._client) == (None, on_user.client._client)  # one pool


@pytest.mark.parametrize(
    ("identity", "problem"),
    [({"user_id": "u1", "grant": GRANT}, "not both"), ({"grant": ""}, "grant token"), ({"grant": "wfg_é"}, "grant")],
    ids=["both", "empty_grant", "non_ascii_grant"],
)
def test_a_mistake_naming_the_payer_is_a_usage_error_before_any_request(identity: dict[str, str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        FakeWattfare().provider(**identity)


def test_a_per_grant_copy_of_an_empty_token_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="grant token"):
        FakeWattfare().provider().for_grant("")


async def test_a_spent_grant_is_one_quota_error_with_wattfares_code_and_never_a_fallback() -> None:
    error = {"code": "grant_invalid", "message": "This grant is used up.", "type": "insufficient_quota", "param": None}
    refusal = httpx2.Response(402, json={"error": error}, headers={"x-should-retry": "false"})
    fake = FakeWattfare(refusal, refusal)

    with pytest.raises(ModelHTTPError) as refused:
        await ask(fake.provider(grant=GRANT))

    assert isinstance(refused.value, ModelQuotaExceededError)
    assert (refused.value.status_code, refused.value.provider_error_code) == (402, "grant_invalid")
    assert len(fake.requests) == 1, "the refusal was retried"
    assert "grant_invalid" in USER_REFUSAL_CODES
    assert not not_a_user_refusal(refused.value)

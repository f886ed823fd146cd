"""One-time grants through both SDK twins against a real `wattfare serve` process (test mode, sandbox upstream)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.wattfare_server import ServerProcess, wattfare_process

from wattfare import AsyncWattfare, GrantInvalidError, Wattfare

pytestmark = pytest.mark.xdist_group("sdk-grants-server")

MODEL = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with wattfare_process(tmp_path_factory.mktemp("wattfare-sdk-grants")) as running:
        yield running


def test_a_test_grant_of_two_requests_serves_two_then_raises_grant_invalid(server: ServerProcess) -> None:
    with Wattfare(server.secret, server.base_url) as wf:
        created = wf.create_test_grant(2)
        grant = wf.grant(created.grant_token)

        answer = grant.chat(model=MODEL, messages=HI)
        with grant.stream(model=MODEL, messages=HI) as stream:
            streamed = "".join(stream.text_stream)
        status = grant.status()
        with pytest.raises(GrantInvalidError) as refused:
            grant.chat(model=MODEL, messages=HI)

    assert answer.choices[0].message.content
    assert streamed
    assert (status.grant_id, status.state) == (created.grant_id, "used_up")
    assert (status.requests_allowed, status.requests_used, status.requests_left) == (2, 2, 0)
    assert (refused.value.status_code, refused.value.code) == (402, "grant_invalid")


@pytest.mark.anyio
async def test_the_async_twin_spends_a_grant_the_same_way(server: ServerProcess) -> None:
    async with AsyncWattfare(server.secret, server.base_url) as wf:
        created = await wf.create_test_grant(2, max_usd="1")
        grant = wf.grant(created.grant_token)

        answers = [await grant.chat(model=MODEL, messages=HI) for _ in range(2)]
        with pytest.raises(GrantInvalidError):
            await grant.chat(model=MODEL, messages=HI)
        status = await grant.status()

    assert all(answer.choices[0].message.content for answer in answers)
    assert created.max_usd == 1
    assert (status.requests_used, status.requests_left, status.state) == (2, 0, "used_up")
    assert status.spent_usd == sum(answer.wattfare.cost_usd or 0 for answer in answers)

"""ChatWattfare on a one-time grant against a real `wattfare serve` process: two requests, then the typed refusal."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

import wattfare
from tests.support.wattfare_server import ServerProcess
from wattfare_langchain import ChatWattfare

pytestmark = [pytest.mark.xdist_group("langchain-server")]


def test_a_grant_of_two_requests_serves_two_calls_then_raises_grant_invalid(wattfare_server: ServerProcess) -> None:
    with wattfare.Wattfare(wattfare_server.secret, wattfare_server.base_url) as wf:
        token = wf.create_test_grant(2).grant_token
        key = SecretStr(wattfare_server.secret)
        app_llm = ChatWattfare(model="openai/gpt-4o-mini", secret_key=key, base_url=wattfare_server.base_url)
        llm = app_llm.for_grant(token)

        answers = [llm.invoke("Hello"), "".join(chunk.text for chunk in llm.stream("Hello"))]
        with pytest.raises(wattfare.GrantInvalidError):
            llm.invoke("Hello")
        status = wf.grant(token).status()

    assert all(answers)
    assert (status.requests_used, status.requests_left, status.state) == (2, 0, "used_up")

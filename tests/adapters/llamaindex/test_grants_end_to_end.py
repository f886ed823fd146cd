"""WattfareLLM on a one-time grant against a real `wattfare serve` process: two requests, then the typed refusal."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from tests.support.wattfare_server import ServerProcess
from wattfare import GrantInvalidError, Wattfare
from wattfare_llamaindex import WattfareLLM

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("llamaindex-server")]

HELLO = [ChatMessage(role=MessageRole.USER, content="Hello")]


async def test_a_grant_of_two_requests_serves_two_calls_then_raises_grant_invalid(
    llamaindex_server: ServerProcess,
) -> None:
    server = llamaindex_server
    with Wattfare(server.secret, server.base_url) as wf:
        token = wf.create_test_grant(2).grant_token
    llm = WattfareLLM(model="openai/gpt-4o-mini", grant=token, secret_key=server.secret, base_url=server.base_url)

    try:
        answers = [llm.chat(HELLO).message.content, (await llm.acomplete("Hello")).text]
        with pytest.raises(GrantInvalidError):
            await llm.achat(HELLO)
    finally:
        llm.close()
        await llm.aclose()

    assert all(answers)

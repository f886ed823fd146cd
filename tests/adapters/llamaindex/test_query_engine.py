"""A LlamaIndex query engine on WattfareLLM, against a real `wattfare serve` process in test mode."""

from __future__ import annotations

import uuid

import pytest
from llama_index.core import Document, SummaryIndex
from llama_index.core.base.response.schema import StreamingResponse

from tests.adapters.llamaindex.conftest import MODEL
from tests.adapters.llamaindex.request_log import RequestLog
from tests.support.wattfare_server import ServerProcess
from wattfare_llamaindex import WattfareLLM

pytestmark = pytest.mark.xdist_group("llamaindex-server")

TEXT = "Wattfare lets each user of an app pay for the app's AI calls from their own capped budget."


@pytest.mark.parametrize("streaming", [False, True])
def test_a_query_engine_sends_the_context_and_the_question(llamaindex_server: ServerProcess, streaming: bool) -> None:
    log = RequestLog()
    with log.client() as http:
        llm = WattfareLLM(
            model=MODEL,
            user_id=f"query-{uuid.uuid4().hex[:8]}",
            secret_key=llamaindex_server.secret,
            base_url=llamaindex_server.base_url,
            http_client=http,
        )
        engine = SummaryIndex.from_documents([Document(text=TEXT)]).as_query_engine(llm=llm, streaming=streaming)
        response = engine.query("Who pays for the AI calls?")
        if streaming:
            assert isinstance(response, StreamingResponse)
            answer = "".join(response.response_gen)
        else:
            answer = str(response)
    assert answer.startswith("Sandbox reply to: Context information is below.")
    [chat] = log.chats()
    prompt = chat["messages"][-1]["content"]
    assert TEXT in prompt
    assert "Who pays for the AI calls?" in prompt
    assert chat.get("stream", False) is streaming

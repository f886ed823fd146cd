"""WattfareLLM and WattfareEmbedding charged to a one-time grant, without a server.

The SDK is given an `httpx.MockTransport` that plays a tiny Wattfare; everything else is real.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from wattfare import GrantInvalidError, UsageError
from wattfare_llamaindex import WattfareEmbedding, WattfareLLM

pytestmark = pytest.mark.anyio

KEY = "sk_test_offline"
MODEL = "openai/gpt-4o-mini"
GRANT = "wfg_" + "g" * 43
OTHER_GRANT = "wfg_" + "h" * 43
HELLO = [ChatMessage(role="user", content="Hello")]

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def chunk(content: str) -> dict[str, Any]:
    delta = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": [delta]}


def sse(*events: dict[str, Any], done: bool = True) -> bytes:
    body = b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


def grant_invalid() -> httpx.Response:
    error = {"code": "grant_invalid", "message": "This grant is used up.", "type": "insufficient_quota", "param": None}
    return httpx.Response(402, json={"error": error}, headers={"x-should-retry": "false"})


class FakeWattfare:
    """Answers chat completions and embeddings (or replays scripted responses), recording each request."""

    def __init__(self, *scripted: httpx.Response) -> None:
        self.scripted = list(scripted)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": []})
        self.requests.append(request)
        if self.scripted:
            return self.scripted.pop(0)
        body = json.loads(request.content)
        if request.url.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": i, "embedding": [0.5, 0.25]} for i, _ in enumerate(body["input"])]
            return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"]})
        if body.get("stream"):
            usage = {**chunk(""), "choices": [], "usage": COMPLETION["usage"]}
            content = sse(chunk("Hel"), chunk("lo"), usage)
            return httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=COMPLETION)

    @property
    def payers(self) -> list[tuple[str | None, str | None]]:
        """Each request's (Wattfare-User, Wattfare-Grant)."""
        return [(r.headers.get("wattfare-user"), r.headers.get("wattfare-grant")) for r in self.requests]

    def transports(self) -> dict[str, Any]:
        return {
            "secret_key": KEY,
            "max_retries": 3,
            "http_client": httpx.Client(transport=httpx.MockTransport(self)),
            "async_http_client": httpx.AsyncClient(transport=httpx.MockTransport(self)),
        }


def test_a_grant_llms_chat_names_the_grant_and_no_user() -> None:
    fake = FakeWattfare()

    reply = WattfareLLM(model=MODEL, grant=GRANT, **fake.transports()).chat(HELLO)

    assert reply.message.content == "Hi!"
    assert fake.payers == [(None, GRANT)]
    assert json.loads(fake.requests[0].content)["model"] == MODEL


async def test_a_grant_llms_async_stream_names_the_grant_and_no_user() -> None:
    fake = FakeWattfare()
    llm = WattfareLLM(model=MODEL, grant=GRANT, **fake.transports())

    deltas = [response.delta async for response in await llm.astream_chat(HELLO)]

    assert "".join(d or "" for d in deltas) == "Hello"
    assert fake.payers == [(None, GRANT)]


@pytest.mark.parametrize("cls", [WattfareLLM, WattfareEmbedding])
def test_both_a_user_and_a_grant_or_neither_is_refused_at_construction(cls: Any) -> None:
    with pytest.raises(UsageError, match="not both"):
        cls(model=MODEL, user_id="u1", grant=GRANT, secret_key=KEY)
    with pytest.raises(UsageError, match="neither"):
        cls(model=MODEL, secret_key=KEY)


@pytest.mark.parametrize("cls", [WattfareLLM, WattfareEmbedding])
def test_a_grant_token_a_header_cannot_carry_is_refused_at_construction(cls: Any) -> None:
    with pytest.raises(UsageError, match="grant token"):
        cls(model=MODEL, grant="wfg_zoë", secret_key=KEY)


def test_for_grant_and_for_user_switch_who_pays_over_the_same_connection() -> None:
    fake = FakeWattfare()
    app_llm = WattfareLLM(model=MODEL, user_id="alice", temperature=0.3, **fake.transports())

    on_grant = app_llm.for_grant(GRANT)
    on_grant.complete("Hello")
    on_grant.for_user("bob").complete("Hello")

    assert fake.payers == [(None, GRANT), ("bob", None)]
    assert (on_grant.user_id, on_grant.temperature, app_llm.grant) == (None, 0.3, None)
    with pytest.raises(UsageError):
        app_llm.for_grant("")


def test_the_grant_token_never_shows_in_a_repr_or_a_serialization() -> None:
    llm = WattfareLLM(model=MODEL, grant=GRANT, secret_key=KEY)
    embed_model = WattfareEmbedding(model=MODEL, grant=GRANT, secret_key=KEY)

    shown = [repr(llm), llm.to_json(), json.dumps(llm.to_payload()), repr(embed_model), embed_model.to_json()]
    assert not [text for text in shown if GRANT in text]


def test_a_spent_grant_raises_grant_invalid_once() -> None:
    fake = FakeWattfare(grant_invalid(), grant_invalid())

    with pytest.raises(GrantInvalidError) as info:
        WattfareLLM(model=MODEL, grant=GRANT, **fake.transports()).chat(HELLO)

    assert (info.value.status_code, info.value.code) == (402, "grant_invalid")
    assert len(fake.requests) == 1


def test_a_grant_cut_off_mid_stream_raises_grant_invalid_after_the_text_before_it() -> None:
    cut = {"error": {"code": "grant_invalid", "message": "Revoked.", "type": "insufficient_quota", "param": None}}
    body = sse(chunk("Hel"), cut, done=False)
    fake = FakeWattfare(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    deltas: list[str] = []

    with pytest.raises(GrantInvalidError):  # noqa: PT012  (the text before the error arrives first)
        for response in WattfareLLM(model=MODEL, grant=GRANT, **fake.transports()).stream_chat(HELLO):
            deltas.append(response.delta or "")

    assert deltas == ["Hel"]


async def test_embeddings_on_a_grant_name_the_grant_and_no_user_sync_and_async() -> None:
    fake = FakeWattfare()
    embed_model = WattfareEmbedding(model="openai/text-embedding-3-small", grant=GRANT, **fake.transports())

    assert embed_model.get_text_embedding("a") == [0.5, 0.25]
    assert await embed_model.for_user("u1").for_grant(OTHER_GRANT).aget_query_embedding("a") == [0.5, 0.25]

    assert fake.payers == [(None, GRANT), (None, OTHER_GRANT)]


def test_a_spent_grant_on_embeddings_raises_grant_invalid() -> None:
    fake = FakeWattfare(grant_invalid())
    embed_model = WattfareEmbedding(model="openai/text-embedding-3-small", grant=GRANT, **fake.transports())

    with pytest.raises(GrantInvalidError):
        embed_model.get_text_embedding("a")
    assert len(fake.requests) == 1

"""ChatWattfare and WattfareEmbeddings charged to a one-time grant, without a server.

The core client is given an `httpx.MockTransport` that plays a tiny Wattfare; everything else is real.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.caches import InMemoryCache

import wattfare
from wattfare_langchain import ChatWattfare, WattfareEmbeddings

pytestmark = pytest.mark.anyio

KEY = "sk_test_offline"
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
EMBEDDINGS = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}], "model": "e"}


def chunk(content: str) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)


def grant_invalid() -> httpx.Response:
    error = {"code": "grant_invalid", "message": "This grant is used up.", "type": "insufficient_quota", "param": None}
    return httpx.Response(402, json={"error": error}, headers={"x-should-retry": "false"})


class FakeWattfare:
    """Answers chat completions and embeddings (or replays scripted responses), recording each request."""

    def __init__(self, *scripted: httpx.Response) -> None:
        self.scripted = list(scripted)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.scripted:
            return self.scripted.pop(0)
        if request.url.path.endswith("/embeddings"):
            return httpx.Response(200, json=EMBEDDINGS)
        if json.loads(request.content).get("stream"):
            usage = {**chunk(""), "choices": [], "usage": COMPLETION["usage"]}
            body = sse(chunk("Hel"), chunk("lo"), usage) + b"data: [DONE]\n\n"
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=COMPLETION)

    @property
    def payers(self) -> list[tuple[str | None, str | None]]:
        """Each request's (Wattfare-User, Wattfare-Grant)."""
        return [(r.headers.get("wattfare-user"), r.headers.get("wattfare-grant")) for r in self.requests]

    def client(self) -> wattfare.Wattfare:
        return wattfare.Wattfare(KEY, http_client=httpx.Client(transport=httpx.MockTransport(self)), max_retries=3)

    def async_client(self) -> wattfare.AsyncWattfare:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return wattfare.AsyncWattfare(KEY, http_client=http, max_retries=3)

    def llm(self, **params: Any) -> ChatWattfare:
        return ChatWattfare(model=MODEL, client=self.client(), async_client=self.async_client(), **params)


def test_a_grant_models_calls_name_the_grant_and_no_user() -> None:
    fake = FakeWattfare()

    assert fake.llm(grant=GRANT).invoke("Hello").text == "Hi!"
    assert fake.payers == [(None, GRANT)]


async def test_a_grant_models_async_stream_names_the_grant_and_no_user() -> None:
    fake = FakeWattfare()

    chunks = [c.text async for c in fake.llm(grant=GRANT).astream("Hello")]

    assert "".join(chunks) == "Hello"
    assert fake.payers == [(None, GRANT)]


def test_a_model_charged_to_both_a_user_and_a_grant_is_refused_at_construction() -> None:
    with pytest.raises(wattfare.UsageError, match="not both"):
        ChatWattfare(model=MODEL, user_id="u1", grant=GRANT, secret_key=KEY)  # pyright: ignore[reportArgumentType]
    with pytest.raises(wattfare.UsageError, match="not both"):
        WattfareEmbeddings(model="e", user_id="u1", grant=GRANT, secret_key=KEY)  # pyright: ignore[reportArgumentType]


def test_a_model_with_neither_refuses_to_send_and_names_both_ways() -> None:
    fake = FakeWattfare()

    with pytest.raises(wattfare.UsageError, match="grant=") as info:
        fake.llm().invoke("Hello")

    assert "user_id=" in str(info.value)
    assert fake.requests == []


def test_for_grant_and_for_user_switch_who_pays_on_the_same_client() -> None:
    fake = FakeWattfare()
    app_llm = fake.llm(temperature=0.3)

    on_grant = app_llm.for_user("alice").for_grant(GRANT)
    on_grant.invoke("Hello")
    on_grant.for_user("bob").invoke("Hello")

    assert fake.payers == [(None, GRANT), ("bob", None)]
    assert (on_grant.user_id, on_grant.temperature, on_grant.client) == (None, 0.3, app_llm.client)
    with pytest.raises(wattfare.UsageError, match="grant"):
        app_llm.for_grant("")


def test_the_grant_token_never_shows_in_reprs_dumps_or_identifying_params() -> None:
    llm = ChatWattfare(model=MODEL, grant=GRANT, secret_key=KEY)  # pyright: ignore[reportArgumentType]

    shown = [repr(llm), json.dumps(llm.model_dump(mode="json")), json.dumps(llm._identifying_params)]  # pyright: ignore[reportPrivateUsage]
    assert not [text for text in shown if GRANT in text]
    assert llm._identifying_params["grant"].startswith("sha256:")  # pyright: ignore[reportPrivateUsage]


def test_an_llm_cache_never_serves_one_grants_answer_to_another() -> None:
    fake = FakeWattfare()
    llm = ChatWattfare(model=MODEL, client=fake.client(), cache=InMemoryCache())

    llm.for_grant(GRANT).invoke("Same question")
    llm.for_grant(GRANT).invoke("Same question")
    llm.for_grant(OTHER_GRANT).invoke("Same question")

    assert fake.payers == [(None, GRANT), (None, OTHER_GRANT)]


def test_a_spent_grant_raises_grant_invalid_once_even_under_with_retry() -> None:
    fake = FakeWattfare(grant_invalid(), grant_invalid(), grant_invalid())
    retrying = fake.llm(grant=GRANT).with_retry(
        retry_if_exception_type=(wattfare.APIError,), stop_after_attempt=3, wait_exponential_jitter=False
    )

    with pytest.raises(wattfare.GrantInvalidError) as info:
        retrying.invoke("Hello")

    assert (info.value.status_code, info.value.code) == (402, "grant_invalid")
    assert len(fake.requests) == 1


def test_a_grant_cut_off_mid_stream_raises_grant_invalid_after_the_text_before_it() -> None:
    cut = {"error": {"code": "grant_invalid", "message": "Revoked.", "type": "insufficient_quota", "param": None}}
    stream = httpx.Response(200, content=sse(chunk("Hel"), cut), headers={"content-type": "text/event-stream"})
    fake = FakeWattfare(stream)
    texts: list[str] = []

    with pytest.raises(wattfare.GrantInvalidError):  # noqa: PT012  (the text before the error arrives first)
        for piece in fake.llm(grant=GRANT).stream("Hello"):
            texts.append(piece.text)

    assert "".join(texts) == "Hel"


async def test_embeddings_on_a_grant_name_the_grant_and_no_user_sync_and_async() -> None:
    fake = FakeWattfare()
    embeddings = WattfareEmbeddings(model="e", grant=GRANT, client=fake.client(), async_client=fake.async_client())

    assert embeddings.embed_query("a") == [0.5, 0.25]
    assert await embeddings.for_user("u1").for_grant(OTHER_GRANT).aembed_query("a") == [0.5, 0.25]

    assert fake.payers == [(None, GRANT), (None, OTHER_GRANT)]
    assert GRANT not in repr(embeddings)


def test_a_spent_grant_on_embeddings_raises_grant_invalid() -> None:
    fake = FakeWattfare(grant_invalid())
    embeddings = WattfareEmbeddings(model="e", grant=GRANT, client=fake.client())

    with pytest.raises(wattfare.GrantInvalidError):
        embeddings.embed_documents(["a"])
    assert len(fake.requests) == 1

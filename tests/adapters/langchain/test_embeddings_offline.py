"""WattfareEmbeddings without a server: batching, users, arguments, and typed errors that arrive once.

The core client is given an `httpx.MockTransport` that plays a tiny Wattfare; everything else is real.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import wattfare
from wattfare_langchain import WattfareEmbeddings

pytestmark = pytest.mark.anyio

KEY = "sk_test_offline"
MODEL = "openai/text-embedding-3-small"


def vector(text: str) -> list[float]:
    return [len(text) / 8, (sum(map(ord, text)) % 64) / 64]


class FakeWattfare:
    """A Wattfare that answers `POST /embeddings` (or replays scripted responses), recording each request."""

    def __init__(self, *scripted: httpx.Response) -> None:
        self.scripted = list(scripted)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.scripted:
            return self.scripted.pop(0)
        body = json.loads(request.content)
        # Listed backwards: the adapter must put vectors back in input order by `index`.
        data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(body["input"])]
        usage = {"prompt_tokens": len(data), "total_tokens": len(data)}
        answer = {"object": "list", "data": data[::-1], "model": body["model"], "usage": usage}
        headers = {"Wattfare-Cost-Usd": "0.00000002", "Wattfare-Remaining-Usd": "4.9", "Wattfare-Request-Id": "req_e"}
        return httpx.Response(200, json=answer, headers=headers)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]

    @property
    def users(self) -> list[str | None]:
        return [request.headers.get("wattfare-user") for request in self.requests]

    def client(self, max_retries: int = 0) -> wattfare.Wattfare:
        http = httpx.Client(transport=httpx.MockTransport(self))
        return wattfare.Wattfare(KEY, http_client=http, max_retries=max_retries)

    def async_client(self, max_retries: int = 0) -> wattfare.AsyncWattfare:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return wattfare.AsyncWattfare(KEY, http_client=http, max_retries=max_retries)

    def embeddings(self, max_retries: int = 0, **params: Any) -> WattfareEmbeddings:
        params = {"model": MODEL, "user_id": "u1", **params}
        return WattfareEmbeddings(
            client=self.client(max_retries), async_client=self.async_client(max_retries), **params
        )


def spent_cap() -> httpx.Response:
    error = {"code": "budget_exceeded", "message": "Cap reached.", "resetsAt": "2030-01-01T00:00:00Z"}
    return httpx.Response(402, json={"error": error}, headers={"x-should-retry": "false"})


TEXTS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def test_documents_are_sent_chunk_size_at_a_time_and_come_back_in_order() -> None:
    fake = FakeWattfare()

    vectors = fake.embeddings(chunk_size=2).embed_documents(TEXTS)

    assert [body["input"] for body in fake.bodies] == [["alpha", "beta"], ["gamma", "delta"], ["epsilon"]]
    assert vectors == [vector(text) for text in TEXTS]
    assert fake.users == ["u1", "u1", "u1"]


async def test_async_documents_are_sent_chunk_size_at_a_time_and_come_back_in_order() -> None:
    fake = FakeWattfare()

    vectors = await fake.embeddings(chunk_size=3).aembed_documents(TEXTS)

    assert [body["input"] for body in fake.bodies] == [["alpha", "beta", "gamma"], ["delta", "epsilon"]]
    assert vectors == [vector(text) for text in TEXTS]


def test_a_calls_chunk_size_overrides_the_instances() -> None:
    fake = FakeWattfare()

    fake.embeddings(chunk_size=1000).embed_documents(TEXTS, chunk_size=4)

    assert [len(body["input"]) for body in fake.bodies] == [4, 1]


async def test_a_query_is_one_text_in_one_request_sync_and_async() -> None:
    fake = FakeWattfare()
    embeddings = fake.embeddings()

    assert embeddings.embed_query("hello") == vector("hello")
    assert await embeddings.aembed_query("hello") == vector("hello")
    assert [body["input"] for body in fake.bodies] == [["hello"], ["hello"]]


def test_no_documents_send_no_request() -> None:
    fake = FakeWattfare()

    assert fake.embeddings().embed_documents([]) == []
    assert fake.requests == []


def test_dimensions_and_model_kwargs_are_sent_with_every_chunk() -> None:
    fake = FakeWattfare()

    fake.embeddings(chunk_size=3, dimensions=256, model_kwargs={"provider": {"order": ["x"]}}).embed_documents(TEXTS)

    for body in fake.bodies:
        assert body["model"] == MODEL
        assert body["dimensions"] == 256
        assert body["provider"] == {"order": ["x"]}
        assert "encoding_format" not in body


def test_for_user_copies_charge_their_own_user_through_the_same_client() -> None:
    fake = FakeWattfare()
    shared = fake.embeddings(user_id=None)

    shared.for_user("alice").embed_query("a")
    shared.for_user("bob").embed_query("b")

    assert fake.users == ["alice", "bob"]
    assert shared.for_user("alice").client is shared.client
    with pytest.raises(wattfare.UsageError):
        shared.for_user("")


def test_an_instance_without_a_user_refuses_to_send_anything() -> None:
    fake = FakeWattfare()

    with pytest.raises(wattfare.UsageError, match="for_user"):
        fake.embeddings(user_id=None).embed_query("x")
    assert fake.requests == []


def test_a_spent_cap_arrives_once_as_the_sdks_typed_error_whatever_max_retries() -> None:
    fake = FakeWattfare(spent_cap(), spent_cap(), spent_cap())

    with pytest.raises(wattfare.BudgetExceededError) as info:
        fake.embeddings(max_retries=5).embed_documents(TEXTS)

    assert info.value.code == "budget_exceeded"
    assert len(fake.requests) == 1


async def test_a_spent_cap_arrives_once_async_too() -> None:
    fake = FakeWattfare(spent_cap(), spent_cap(), spent_cap())

    with pytest.raises(wattfare.BudgetExceededError):
        await fake.embeddings(max_retries=5).aembed_query("x")

    assert len(fake.requests) == 1


def test_a_missing_connection_is_the_sdks_not_connected_error() -> None:
    refused = httpx.Response(402, json={"error": {"code": "not_connected", "message": "Connect first."}})
    fake = FakeWattfare(refused)

    with pytest.raises(wattfare.NotConnectedError):
        fake.embeddings().embed_query("x")


def test_openai_embeddings_constructor_names_keep_working() -> None:
    embeddings = WattfareEmbeddings(
        model=MODEL,
        user_id="u1",
        openai_api_key="sk_test_alias",  # pyright: ignore[reportCallIssue]
        openai_api_base="http://wattfare.test",  # pyright: ignore[reportCallIssue]
        request_timeout=7.5,  # pyright: ignore[reportCallIssue]
    )

    assert embeddings.secret_key is not None
    assert embeddings.secret_key.get_secret_value() == "sk_test_alias"
    assert (embeddings.base_url, embeddings.timeout) == ("http://wattfare.test", 7.5)
    assert "sk_test_alias" not in repr(embeddings)


@pytest.mark.parametrize(
    ("argument", "advice"),
    [
        ("openai_organization", "organization"),
        ("tiktoken_model_name", "whole"),
        ("embedding_ctx_length", "whole"),
        ("check_embedding_ctx_length", "whole"),
        ("default_headers", "httpx.Client"),
        ("deployment", "Azure"),
        ("retry_max_seconds", "max_retries"),
        ("show_progress_bar", "progress"),
    ],
)
def test_openai_embeddings_arguments_without_a_meaning_here_are_refused_with_what_to_do(
    argument: str, advice: str
) -> None:
    with pytest.raises(wattfare.UsageError, match=advice) as info:
        WattfareEmbeddings(model=MODEL, api_key=KEY, **{argument: "x"})  # pyright: ignore[reportCallIssue]

    assert "WattfareEmbeddings does not take" in str(info.value)


def test_an_unknown_argument_is_refused_and_never_sent() -> None:
    with pytest.raises(wattfare.UsageError, match=r"dimension \(did you mean dimensions\?\).*model_kwargs"):
        WattfareEmbeddings(model=MODEL, api_key=KEY, dimension=3)  # pyright: ignore[reportCallIssue]


@pytest.mark.parametrize("name", ["api_key", "openai_api_key", "timeout", "base_url", "tiktoken_model_name"])
def test_client_settings_are_refused_in_model_kwargs(name: str) -> None:
    with pytest.raises(wattfare.UsageError, match="WattfareEmbeddings constructor"):
        WattfareEmbeddings(model=MODEL, api_key=KEY, model_kwargs={name: "x"})  # pyright: ignore[reportCallIssue]


@pytest.mark.parametrize("chunk_size", [0, -1])
def test_a_chunk_size_below_one_is_refused(chunk_size: int) -> None:
    fake = FakeWattfare()

    with pytest.raises(wattfare.UsageError, match="chunk_size"):
        fake.embeddings().embed_documents(TEXTS, chunk_size=chunk_size)
    with pytest.raises(ValueError, match="chunk_size"):
        WattfareEmbeddings(model=MODEL, api_key=KEY, chunk_size=chunk_size)  # pyright: ignore[reportCallIssue]
    assert fake.requests == []


def test_a_missing_secret_key_is_a_usage_error_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATTFARE_SECRET_KEY", raising=False)

    with pytest.raises(wattfare.UsageError, match="secret key"):
        WattfareEmbeddings(model=MODEL, user_id="u1")

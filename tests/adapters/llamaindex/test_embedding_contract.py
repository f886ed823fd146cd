"""WattfareEmbedding against LlamaIndex's embedding contract, without a server.

The SDK is given an `httpx.MockTransport` that plays a tiny Wattfare; LlamaIndex's public entry points
(`get_query_embedding`, `get_text_embedding_batch`, their async twins, `similarity`, a `VectorStoreIndex`) drive
the adapter's hooks as LlamaIndex itself does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler

import wattfare
from wattfare_llamaindex import WattfareEmbedding

pytestmark = pytest.mark.anyio

KEY = "sk_test_offline"
MODEL = "openai/text-embedding-3-small"


def vector(text: str) -> list[float]:
    return [len(text) / 8, (sum(map(ord, text)) % 64) / 64, 0.5]


class FakeWattfare:
    """Answers `POST /embeddings` (or replays scripted responses), recording each request."""

    def __init__(self, *scripted: httpx.Response) -> None:
        self.scripted = list(scripted)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.scripted:
            return self.scripted.pop(0)
        body = json.loads(request.content)
        data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(body["input"])]
        answer = {"object": "list", "data": data[::-1], "model": body["model"], "usage": {"prompt_tokens": 1}}
        return httpx.Response(200, json=answer, headers={"Wattfare-Cost-Usd": "0.00000001"})

    @property
    def inputs(self) -> list[list[str]]:
        return [json.loads(request.content)["input"] for request in self.requests]

    @property
    def users(self) -> list[str | None]:
        return [request.headers.get("wattfare-user") for request in self.requests]


@pytest.fixture
def fake() -> FakeWattfare:
    return FakeWattfare()


@pytest.fixture
def model(fake: FakeWattfare) -> Iterator[WattfareEmbedding]:
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        yield WattfareEmbedding(
            model=MODEL,
            user_id="u1",
            secret_key=KEY,
            http_client=http,
            async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake)),
            embed_batch_size=2,
            max_retries=0,
        )


def test_it_is_a_llamaindex_embedding_model_named_for_serialization(model: WattfareEmbedding) -> None:
    assert isinstance(model, BaseEmbedding)
    assert model.class_name() == "WattfareEmbedding"
    assert model.model_name == MODEL
    assert model.to_payload() == {"class_name": "WattfareEmbedding", "model_name": MODEL, "embed_batch_size": 2}
    assert KEY not in repr(model)
    assert KEY not in json.dumps(model.to_dict())


def test_a_query_and_a_text_are_one_request_each(model: WattfareEmbedding, fake: FakeWattfare) -> None:
    assert model.get_query_embedding("what is metered?") == vector("what is metered?")
    assert model.get_text_embedding("a document") == vector("a document")
    assert fake.inputs == [["what is metered?"], ["a document"]]
    assert fake.users == ["u1", "u1"]


async def test_async_query_and_text_are_one_request_each(model: WattfareEmbedding, fake: FakeWattfare) -> None:
    assert await model.aget_query_embedding("q") == vector("q")
    assert await model.aget_text_embedding("t") == vector("t")
    assert fake.inputs == [["q"], ["t"]]


TEXTS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def test_a_batch_is_sent_embed_batch_size_texts_per_request_in_order(
    model: WattfareEmbedding, fake: FakeWattfare
) -> None:
    assert model.get_text_embedding_batch(TEXTS) == [vector(text) for text in TEXTS]
    assert fake.inputs == [["alpha", "beta"], ["gamma", "delta"], ["epsilon"]]


@pytest.mark.parametrize("num_workers", [None, 2])
async def test_an_async_batch_comes_back_in_order_whatever_the_workers(
    model: WattfareEmbedding, fake: FakeWattfare, num_workers: int | None
) -> None:
    model.num_workers = num_workers

    assert await model.aget_text_embedding_batch(TEXTS) == [vector(text) for text in TEXTS]
    assert sorted(map(tuple, fake.inputs)) == [("alpha", "beta"), ("epsilon",), ("gamma", "delta")]


def test_dimensions_and_additional_kwargs_are_sent(fake: FakeWattfare) -> None:
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        model = WattfareEmbedding(
            model=MODEL,
            user_id="u1",
            api_key=KEY,
            http_client=http,
            dimensions=64,
            additional_kwargs={"provider": {"order": ["x"]}},
        )
        model.get_text_embedding("x")

    body = json.loads(fake.requests[0].content)
    assert body == {"model": MODEL, "input": ["x"], "dimensions": 64, "provider": {"order": ["x"]}}


def test_for_user_copies_charge_their_own_user_over_the_same_pools(
    model: WattfareEmbedding, fake: FakeWattfare
) -> None:
    model.for_user("alice").get_query_embedding("a")
    model.get_query_embedding("b")

    assert fake.users == ["alice", "u1"]
    assert model.for_user("alice")._connection is model._connection
    with pytest.raises(wattfare.UsageError):
        model.for_user("")


def test_the_callbacks_see_each_batch(model: WattfareEmbedding) -> None:
    debug = LlamaDebugHandler()
    model.callback_manager = CallbackManager([debug])

    model.get_text_embedding_batch(TEXTS)

    assert len(debug.get_event_pairs(CBEventType.EMBEDDING)) == 3


def test_similarity_of_two_vectors_it_made(model: WattfareEmbedding) -> None:
    same = model.similarity(model.get_text_embedding("same"), model.get_query_embedding("same"))

    assert same == pytest.approx(1.0)


def test_a_vector_index_embeds_its_nodes_and_the_query_through_it(model: WattfareEmbedding, fake: FakeWattfare) -> None:
    documents = [Document(text=text) for text in ("Wattfare meters.", "Caps hold.", "Users pay.")]

    index = VectorStoreIndex.from_documents(documents, embed_model=model)
    nodes = index.as_retriever(similarity_top_k=1).retrieve("Caps hold.")

    assert nodes[0].get_content() == "Caps hold."
    assert fake.inputs[-1] == ["Caps hold."]  # the query, last
    assert sum(len(batch) for batch in fake.inputs) == 4


def spent_cap() -> httpx.Response:
    error = {"code": "budget_exceeded", "message": "Cap reached.", "resetsAt": "2030-01-01T00:00:00Z"}
    return httpx.Response(402, json={"error": error}, headers={"x-should-retry": "false"})


def refusing_model(fake: FakeWattfare, **kwargs: Any) -> WattfareEmbedding:
    return WattfareEmbedding(
        model=MODEL,
        user_id="u1",
        secret_key=KEY,
        http_client=httpx.Client(transport=httpx.MockTransport(fake)),
        async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake)),
        max_retries=5,
        **kwargs,
    )


def test_a_spent_cap_arrives_once_as_the_sdks_typed_error() -> None:
    fake = FakeWattfare(spent_cap(), spent_cap(), spent_cap())

    with pytest.raises(wattfare.BudgetExceededError) as info:
        refusing_model(fake).get_text_embedding_batch(TEXTS)

    assert info.value.code == "budget_exceeded"
    assert len(fake.requests) == 1


async def test_a_spent_cap_arrives_once_async_too() -> None:
    fake = FakeWattfare(spent_cap(), spent_cap(), spent_cap())

    with pytest.raises(wattfare.BudgetExceededError):
        await refusing_model(fake).aget_query_embedding("x")

    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("argument", "advice"),
    [("mode", "model="), ("default_headers", "httpx"), ("reuse_client", "remove it"), ("api_version", "Azure")],
)
def test_openai_embedding_arguments_without_a_meaning_here_are_refused(argument: str, advice: str) -> None:
    extra: dict[str, Any] = {argument: "x"}
    with pytest.raises(wattfare.UsageError, match=advice):
        WattfareEmbedding(model=MODEL, user_id="u1", secret_key=KEY, **extra)


def test_an_unknown_argument_is_refused_and_never_sent() -> None:
    with pytest.raises(wattfare.UsageError, match=r"WattfareEmbedding does not take dimension \(did you mean"):
        WattfareEmbedding(model=MODEL, user_id="u1", secret_key=KEY, dimension=3)


@pytest.mark.parametrize("name", ["api_key", "secret_key", "timeout", "api_base"])
def test_client_settings_are_refused_in_additional_kwargs(name: str) -> None:
    with pytest.raises(wattfare.UsageError, match="WattfareEmbedding constructor"):
        WattfareEmbedding(model=MODEL, user_id="u1", secret_key=KEY, additional_kwargs={name: "x"})


def test_openai_embeddings_names_for_the_key_and_server_are_taken(fake: FakeWattfare) -> None:
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        model = WattfareEmbedding(
            model=MODEL, user_id="u1", api_key="sk_test_alias", api_base="http://wattfare.test", http_client=http
        )
        model.get_query_embedding("x")

    assert fake.requests[0].headers["authorization"] == "Bearer sk_test_alias"
    assert str(fake.requests[0].url) == "http://wattfare.test/api/v1/embeddings"


def test_an_empty_user_is_refused_at_construction() -> None:
    with pytest.raises(wattfare.UsageError):
        WattfareEmbedding(model=MODEL, user_id="", secret_key=KEY)

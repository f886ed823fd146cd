"""WattfareEmbeddings against a real `wattfare serve` process: batches metered per user, caps and a vector store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

import wattfare
from tests.support.ledger import Ledger
from tests.support.wattfare_server import ServerProcess
from wattfare_langchain import WattfareEmbeddings

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("langchain-server")]

MODEL = "openai/text-embedding-3-small"
TEXTS = ["Caps hold under any concurrency.", "Users connect their own budget.", "A spent cap is never retried."]


@pytest.fixture
def wf(wattfare_server: ServerProcess) -> Iterator[wattfare.Wattfare]:
    with wattfare.Wattfare(wattfare_server.secret, wattfare_server.base_url) as client:
        yield client


@pytest.fixture
def app_embeddings(wattfare_server: ServerProcess) -> WattfareEmbeddings:
    """The app's one embeddings instance, built at startup; requests use `for_user`."""
    server = wattfare_server
    return WattfareEmbeddings(model=MODEL, secret_key=server.secret, base_url=server.base_url, chunk_size=2)  # pyright: ignore[reportArgumentType]


def test_each_chunk_is_one_request_charged_to_the_user(
    app_embeddings: WattfareEmbeddings, wf: wattfare.Wattfare, wattfare_server: ServerProcess
) -> None:
    vectors = app_embeddings.for_user("e2e-embed").embed_documents(TEXTS)

    assert len(vectors) == 3
    assert len({len(vector) for vector in vectors}) == 1
    [row] = wf.usage("e2e-embed").data
    assert (row.model, row.requests, row.completion_tokens) == (MODEL, 2, 0)  # chunks of 2: two requests
    assert row.endpoint in (None, "embeddings")
    entries = Ledger(wattfare_server.db_path).entries("e2e-embed")
    assert [entry.endpoint for entry in entries] == ["embeddings", "embeddings"]
    assert sum(entry.amount for entry in entries) > 0


async def test_async_documents_match_the_sync_ones_and_are_charged_too(
    app_embeddings: WattfareEmbeddings, wf: wattfare.Wattfare
) -> None:
    embeddings = app_embeddings.for_user("e2e-embed-async")

    assert await embeddings.aembed_documents(TEXTS) == embeddings.embed_documents(TEXTS)
    assert await embeddings.aembed_query(TEXTS[0]) == embeddings.embed_query(TEXTS[0])
    assert sum(row.requests for row in wf.usage("e2e-embed-async").data) == 6
    await embeddings.aclose()


def test_dimensions_shorten_every_vector(app_embeddings: WattfareEmbeddings) -> None:
    short = app_embeddings.model_copy(update={"dimensions": 32}).for_user("e2e-embed-short")

    assert [len(vector) for vector in short.embed_documents(TEXTS)] == [32, 32, 32]


def test_a_vector_store_finds_the_closest_text_and_the_user_pays_for_it(
    app_embeddings: WattfareEmbeddings, wf: wattfare.Wattfare
) -> None:
    store = InMemoryVectorStore(app_embeddings.for_user("e2e-embed-store"))
    store.add_documents([Document(page_content=text) for text in TEXTS])

    [found] = store.similarity_search("Is a spent cap retried?", k=1)

    assert found.page_content == "A spent cap is never retried."
    assert sum(row.requests for row in wf.usage("e2e-embed-store").data) == 3  # two chunks, then the query


def test_a_spent_cap_is_the_sdks_budget_exceeded_error_and_charges_nothing(
    app_embeddings: WattfareEmbeddings, wf: wattfare.Wattfare, wattfare_server: ServerProcess
) -> None:
    wf.create_session("e2e-embed-broke", monthly_usd="0.00000001")
    embeddings = app_embeddings.model_copy(update={"max_retries": 5}).for_user("e2e-embed-broke")

    with pytest.raises(wattfare.BudgetExceededError) as caught:
        embeddings.embed_query("a long text to embed " * 50)

    assert caught.value.resets_at is not None
    assert Ledger(wattfare_server.db_path).entries("e2e-embed-broke") == []
    assert wf.usage("e2e-embed-broke").data == []

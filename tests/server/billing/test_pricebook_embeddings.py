"""Embedding models in the price book: read from their own list, told apart from chat models, kept when it fails."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from wattfare.server.billing.pricebook import PriceBook, as_embedding_entry, load_snapshot, price_models
from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse, UpstreamUnavailableError

pytestmark = pytest.mark.anyio

CHAT = {"id": "acme/chat", "pricing": {"prompt": "0.000001", "completion": "0.000002"}}
# OpenRouter's `/embeddings/models` entries: a prompt price only, sometimes no architecture at all.
EMBEDDER = {"id": "acme/embed", "pricing": {"prompt": "0.00000002"}}


class ListingUpstream:
    """An upstream that only lists models (a fake: the price book calls nothing else)."""

    name = "listing"

    def __init__(self, chat: list[dict[str, Any]], embedding: list[dict[str, Any]] | Exception) -> None:
        self.chat = chat
        self.embedding = embedding

    async def list_models(self) -> list[dict[str, Any]]:
        return self.chat

    async def list_embedding_models(self) -> list[dict[str, Any]]:
        if isinstance(self.embedding, Exception):
            raise self.embedding
        return self.embedding

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        raise AssertionError("not called")

    async def embed(self, request: UpstreamRequest) -> UpstreamResponse:
        raise AssertionError("not called")

    async def aclose(self) -> None:
        pass


def test_the_bundled_snapshot_prices_the_documented_embedding_models_per_input_token() -> None:
    models = price_models(load_snapshot())

    for model_id, per_million in (
        ("openai/text-embedding-3-small", "0.02"),
        ("openai/text-embedding-3-large", "0.13"),
        ("openai/text-embedding-ada-002", "0.10"),
    ):
        model = models[model_id]
        assert model.embeds
        assert model.pricing.default.prompt * 1_000_000 == Decimal(per_million)
        assert model.pricing.default.completion == 0
    assert not models["openai/gpt-4o-mini"].embeds


def test_a_prompt_only_listing_is_an_embedding_model_whose_output_is_free() -> None:
    entry = as_embedding_entry(EMBEDDER)

    assert entry["pricing"] == {"prompt": "0.00000002", "completion": "0"}
    assert entry["architecture"]["output_modalities"] == ["embeddings"]
    assert price_models([entry])["acme/embed"].embeds
    # Unmarked, the same entry cannot be priced: a chat model without a completion price is refused, never free.
    assert price_models([EMBEDDER]) == {}


async def test_a_refresh_reads_both_lists() -> None:
    book = PriceBook(ListingUpstream([CHAT], [EMBEDDER]), fallback=[])  # type: ignore[arg-type]

    assert await book.refresh()

    assert [(model.id, model.embeds) for model in book.models()] == [("acme/chat", False), ("acme/embed", True)]


async def test_when_only_the_embedding_list_fails_chat_prices_renew_and_embedding_prices_stay() -> None:
    book = PriceBook(ListingUpstream([CHAT], [EMBEDDER]), fallback=[])  # type: ignore[arg-type]
    await book.refresh()
    renewed = {**CHAT, "pricing": {"prompt": "0.000003", "completion": "0.000004"}}
    book._upstream = ListingUpstream([renewed], UpstreamUnavailableError("down", timed_out=True))  # type: ignore[assignment]

    assert await book.refresh()

    chat, embedder = book.get("acme/chat"), book.get("acme/embed")
    assert chat is not None
    assert chat.pricing.default.prompt == Decimal("0.000003")
    assert embedder is not None
    assert embedder.embeds


async def test_a_provider_without_embedding_models_serves_none_after_a_refresh() -> None:
    book = PriceBook(ListingUpstream([CHAT], []))  # type: ignore[arg-type]
    assert book.get("openai/text-embedding-3-small") is not None  # from the bundled snapshot, until the refresh

    assert await book.refresh()

    assert book.get("openai/text-embedding-3-small") is None
    assert book.similar("text-embedding-3-small") == []

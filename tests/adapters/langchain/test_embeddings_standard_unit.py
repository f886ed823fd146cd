"""LangChain's own unit suite for embeddings (`langchain-tests`), run on WattfareEmbeddings."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import EmbeddingsUnitTests

from wattfare_langchain import WattfareEmbeddings


class TestWattfareEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[WattfareEmbeddings]:
        return WattfareEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "openai/text-embedding-3-small", "user_id": "user_42", "api_key": "sk_test_unit"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"WATTFARE_SECRET_KEY": "sk_test_from_env", "WATTFARE_BASE_URL": "https://wattfare.example"},
            {"model": "openai/text-embedding-3-small", "user_id": "user_42"},
            {"secret_key": "sk_test_from_env", "base_url": "https://wattfare.example"},
        )

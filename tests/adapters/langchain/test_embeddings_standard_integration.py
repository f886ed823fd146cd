"""LangChain's own integration suite for embeddings (`langchain-tests`), run on WattfareEmbeddings against a real
Wattfare server process in test mode (the sandbox upstream; the real one with `WATTFARE_LIVE=1`).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from tests.support.wattfare_server import ServerProcess
from wattfare_langchain import WattfareEmbeddings

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("langchain-server")]


class TestWattfareEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _server(self, wattfare_server: ServerProcess) -> None:
        self.server = wattfare_server

    @property
    def embeddings_class(self) -> type[WattfareEmbeddings]:
        return WattfareEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {
            "model": "openai/text-embedding-3-small",
            "user_id": "standard-suite-embeddings",
            "api_key": self.server.secret,
            "base_url": self.server.base_url,
        }

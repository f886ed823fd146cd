"""LangChain's own integration suite for chat models (`langchain-tests`), run on ChatWattfare against a real
Wattfare server process in test mode (the sandbox upstream; the real one with `WATTFARE_LIVE=1`).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.support.wattfare_server import ServerProcess
from wattfare_langchain import ChatWattfare

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("langchain-server")]

_SANDBOX = "the sandbox upstream is deterministic, not intelligent:"
NEEDS_A_REAL_MODEL = {
    "test_json_mode": f"{_SANDBOX} JSON mode sends no schema, and the keys 'setup'/'punchline' are named only in prose",
}


class TestChatWattfareIntegration(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _server(self, wattfare_server: ServerProcess) -> None:
        self.server = wattfare_server

    @property
    def chat_model_class(self) -> type[ChatWattfare]:
        return ChatWattfare

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "openai/gpt-4o-mini",
            "user_id": "standard-suite",
            "api_key": self.server.secret,
            "base_url": self.server.base_url,
        }

    @property
    def model_override_value(self) -> str:
        return "anthropic/claude-sonnet-4"

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def enable_vcr_tests(self) -> bool:
        return True

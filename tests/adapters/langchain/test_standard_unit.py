"""LangChain's own unit suite for chat models (`langchain-tests`), run on ChatWattfare."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from wattfare_langchain import ChatWattfare

pytestmark = pytest.mark.anyio


class TestChatWattfareUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatWattfare]:
        return ChatWattfare

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "openai/gpt-4o-mini", "user_id": "user_42", "api_key": "sk_test_unit"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"WATTFARE_SECRET_KEY": "sk_test_from_env", "WATTFARE_BASE_URL": "https://wattfare.example"},
            {"model": "openai/gpt-4o-mini", "user_id": "user_42"},
            {"secret_key": "sk_test_from_env", "base_url": "https://wattfare.example"},
        )

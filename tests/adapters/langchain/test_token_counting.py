"""ChatWattfare counts tokens with tiktoken, offline, without `transformers` (LangChain's default tokenizer).

tiktoken downloads an encoding on first use; these tests run with the network closed, reading the encodings
from a directory that an installed package ships them in (as `TIKTOKEN_CACHE_DIR`, tiktoken's own setting).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import tiktoken
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from tests.support.adapter_fixtures import no_network_but_loopback
from wattfare_langchain import ChatWattfare
from wattfare_langchain._tokens import encoding_name

__all__ = ["no_network_but_loopback"]  # autouse: a download attempt fails the test

KEY = "sk_test_tokens"
TEXT = "Wattfare charges each app user's AI budget: 6 × 7 = 42. Привет, мир! こんにちは世界。"
# Installed packages that ship tiktoken's encoding files under their cache names (litellm, llama-index-core).
SHIPPED = [("litellm", "litellm_core_utils/tokenizers"), ("llama_index.core", "_static/tiktoken_cache")]
O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"  # tiktoken's cache name for o200k_base


@pytest.fixture(autouse=True)
def shipped_encodings(monkeypatch: pytest.MonkeyPatch) -> None:
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(_shipped_cache()))


def _shipped_cache() -> Path:
    for package, folder in SHIPPED:
        spec = importlib.util.find_spec(package)  # located, not imported: importing litellm sets the variable
        for location in (spec.submodule_search_locations or []) if spec else []:
            if (Path(location) / folder / O200K_FILE).is_file():
                return Path(location) / folder
    pytest.fail("no installed package ships tiktoken's encodings: set TIKTOKEN_CACHE_DIR")


def llm(model: str = "openai/gpt-4o-mini", **options: object) -> ChatWattfare:
    return ChatWattfare(model=model, user_id="u", secret_key=KEY, **options)  # pyright: ignore[reportArgumentType]


def encoded(encoding: str, text: str) -> int:
    return len(tiktoken.get_encoding(encoding).encode_ordinary(text))


def test_counts_are_positive_and_grow_with_the_text() -> None:
    model = llm()

    assert 0 < model.get_num_tokens("Hello") < model.get_num_tokens("Hello, how are you today?")
    assert model.get_num_tokens("") == 0


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-4o-mini", "o200k_base"),
        ("openai/gpt-4.1", "o200k_base"),
        ("openai/gpt-5", "o200k_base"),
        ("openai/o3-mini", "o200k_base"),
        ("openai/gpt-4", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("openai/some-future-model", "o200k_base"),  # unknown to tiktoken: the approximation
        ("anthropic/claude-sonnet-4", "o200k_base"),  # not OpenAI's: the approximation
        ("meta-llama/gpt-4-lookalike", "o200k_base"),  # the provider decides, not the name
    ],
)
def test_the_encoding_follows_the_models_family(model: str, encoding: str) -> None:
    assert encoding_name(model) == encoding


def test_an_openai_models_count_is_tiktokens_own() -> None:
    assert llm("openai/gpt-4o-mini").get_num_tokens(TEXT) == encoded("o200k_base", TEXT)
    assert llm("openai/gpt-4").get_num_tokens(TEXT) == encoded("cl100k_base", TEXT)
    assert encoded("o200k_base", TEXT) != encoded("cl100k_base", TEXT)  # so the two lines above tell them apart
    assert llm("openai/gpt-4").get_token_ids(TEXT) == tiktoken.encoding_for_model("gpt-4").encode(TEXT)


def test_special_token_text_is_counted_as_text() -> None:
    assert llm().get_num_tokens("<|endoftext|>") > 1


def test_messages_are_counted_as_framed_on_the_openai_wire() -> None:
    messages: list[BaseMessage] = [SystemMessage("You are terse."), HumanMessage("What is 6 times 7?", name="ada")]
    o200k = tiktoken.get_encoding("o200k_base")
    words = sum(len(o200k.encode(text)) for text in ("system", "You are terse.", "user", "What is 6 times 7?", "ada"))

    # 3 per message, 1 for the name, 3 priming the reply (OpenAI's cookbook, as ChatOpenAI counts).
    assert llm().get_num_tokens_from_messages(messages) == words + 3 * 2 + 1 + 3


def test_tool_calls_tool_results_and_tools_add_to_the_count() -> None:
    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    model = llm()
    question: list[BaseMessage] = [HumanMessage("What is 6 times 7?")]
    call = AIMessage("", tool_calls=[{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1"}])
    result = ToolMessage("42", tool_call_id="call_1")

    asked = model.get_num_tokens_from_messages(question)
    assert model.get_num_tokens_from_messages([*question, call]) > asked + 3
    assert model.get_num_tokens_from_messages([*question, call, result]) > model.get_num_tokens_from_messages(
        [*question, call]
    )
    assert model.get_num_tokens_from_messages(question, tools=[multiply]) > asked + 5


def test_an_image_counts_as_a_low_detail_image() -> None:
    picture = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with_image = HumanMessage(content=[{"type": "text", "text": "What is this?"}, picture])

    model = llm()
    assert (
        model.get_num_tokens_from_messages([with_image])
        == model.get_num_tokens_from_messages([HumanMessage("What is this?")]) + 85
    )


def test_custom_get_token_ids_is_used_when_given() -> None:
    model = llm(custom_get_token_ids=lambda text: list(range(len(text.split()))))

    assert model.get_num_tokens("one two three") == 3
    assert model.get_num_tokens_from_messages([HumanMessage("one two three")]) == 3 + 1 + 3 + 3  # role "user": 1


def test_counting_needs_no_transformers() -> None:
    model = llm("anthropic/claude-sonnet-4")

    assert model.get_num_tokens_from_messages([HumanMessage(TEXT)]) > model.get_num_tokens(TEXT)
    assert "transformers" not in sys.modules

"""Token counts for `ChatWattfare`, with tiktoken, the way `ChatOpenAI` counts them.

LangChain's default tokenizer is GPT-2's from `transformers` (a heavy install, and a download from the
Hugging Face hub). OpenAI models are counted exactly with their tiktoken encoding; other families with
`o200k_base`, an approximation (their tokenizers are not public, or not tiktoken's).

tiktoken fetches an encoding's file on first use and caches it (in `TIKTOKEN_CACHE_DIR` when set): offline,
point `TIKTOKEN_CACHE_DIR` at a directory that holds the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

import tiktoken
from langchain_core.messages import BaseMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from wattfare_langchain._convert import to_openai_messages

APPROXIMATE_ENCODING: Final = "o200k_base"
# OpenAI's chat format (its cookbook, and langchain-openai): each message is framed by 3 tokens, a name
# costs 1 more, and the reply is primed with 3.
_PER_MESSAGE: Final = 3
_PER_NAME: Final = 1
_REPLY_PRIMER: Final = 3
# Undocumented by OpenAI; langchain-openai's estimates.
_PER_TOOL_CALL_ID: Final = 3
_PER_IMAGE: Final = 85  # a low-detail image; a larger one costs more, by a size this does not fetch


def encoding_name(model: str) -> str:
    """The tiktoken encoding of a Wattfare model id: "openai/gpt-4o" uses o200k_base, "openai/gpt-4" cl100k_base.

    Models tiktoken does not know, and every other provider's, get `APPROXIMATE_ENCODING`.
    """
    provider, _, name = model.rpartition("/")
    name = name.partition(":")[0]  # a variant suffix: "openai/gpt-oss-20b:free"
    if provider in ("", "openai"):
        try:
            return tiktoken.encoding_name_for_model(name)
        except KeyError:
            pass
    return APPROXIMATE_ENCODING


def token_ids(model: str, text: str) -> list[int]:
    """The tokens of `text` in the model's encoding; special-token text ("<|endoftext|>") counts as plain text."""
    return tiktoken.get_encoding(encoding_name(model)).encode_ordinary(text)


def count_messages(
    messages: Sequence[BaseMessage], tools: Sequence[Any] | None, count_text: Callable[[str], int]
) -> int:
    """The prompt tokens of `messages` (and `tools`) as sent on the OpenAI wire.

    Args:
        messages: The conversation.
        tools: Tools as `bind_tools` takes them; their JSON schemas are counted as JSON text, an estimate.
        count_text: Counts the tokens of one string.
    """
    total = _REPLY_PRIMER
    for message in to_openai_messages(messages):
        total += _PER_MESSAGE
        for key, value in message.items():
            if key == "tool_call_id":
                total += _PER_TOOL_CALL_ID
            elif isinstance(value, list):
                total += sum(_count_part(part, count_text) for part in cast(list[Any], value))
            elif value:
                total += count_text(str(value))
            if key == "name":
                total += _PER_NAME
    for tool in tools or ():
        total += count_text(json.dumps(convert_to_openai_tool(tool)["function"], separators=(",", ":")))
    return total


def _count_part(part: object, count_text: Callable[[str], int]) -> int:
    """One content part or tool call; parts that are neither text, image nor call (audio, files) count 0."""
    if isinstance(part, str):
        return count_text(part)
    if not isinstance(part, Mapping):
        return 0
    part = cast(Mapping[str, Any], part)
    kind = part.get("type")
    if kind == "text":
        return count_text(str(part.get("text", "")))
    if kind == "image_url":
        return _PER_IMAGE
    if kind == "function":
        function = cast(Mapping[str, Any], part.get("function") or {})
        return count_text(str(function.get("name", ""))) + count_text(str(function.get("arguments", "")))
    return 0

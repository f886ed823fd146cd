"""Prompt-token bounds: an upper bound on a request's prompt tokens that holds for every tokenizer.

Holds must cover the worst case before the upstream has counted anything, and Wattfare does
not know which tokenizer a model uses. Byte-level tokenizers (BPE over UTF-8, SentencePiece with byte
fallback) never emit a token shorter than one byte, so a text has at most as many tokens as UTF-8
bytes. The bound below is the length of a compact JSON encoding of the messages (which is at least
the UTF-8 length of every string in them, keys included), plus allowances for what a chat template
adds around each message and for non-text parts, whose tokens do not depend on their encoded size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

__all__ = [
    "BASE_TOKEN_ALLOWANCE",
    "IMAGE_TOKEN_ALLOWANCE",
    "PER_MESSAGE_TOKEN_ALLOWANCE",
    "image_part_count",
    "prompt_token_bound",
]

PER_MESSAGE_TOKEN_ALLOWANCE: int = 16
"""Tokens a chat template may add per message (role markers, separators, end-of-turn tokens)."""

BASE_TOKEN_ALLOWANCE: int = 64
"""Tokens a chat template may add per request (system preamble, generation prompt, tool headers)."""

IMAGE_TOKEN_ALLOWANCE: int = 8192
"""Tokens allowed per image, audio or file part. Generous for images (current vision models tile a
high-resolution image into a few thousand tokens at most); long audio or large documents can exceed
it, in which case the settled cost may exceed the hold and the excess is absorbed, never
charged beyond the cap (see `charge_for`)."""

_MEDIA_PART_TYPES = frozenset({"image_url", "input_audio", "file"})
_IMAGE_PART_TYPES = frozenset({"image_url"})


def prompt_token_bound(messages: Sequence[object], tools: object | None = None, extra: object | None = None) -> int:
    """An upper bound on the prompt tokens of a chat request, valid for every byte-level tokenizer.

    Args:
        messages: The request's ``messages`` in OpenAI chat format, as parsed from JSON. Content may be a
            string or a list of parts (``text``, ``image_url``, ``input_audio``, ``file``); tool calls,
            names and tool call ids are counted with everything else.
        tools: The request's ``tools`` (tool schemas are rendered into the prompt), if any.
        extra: Anything else rendered into the prompt, such as a ``response_format`` schema.

    Returns:
        The bound, in tokens.

    Raises:
        TypeError: The request holds something that is not JSON data.
    """
    media_parts, text_only = _split_media(messages)
    total = BASE_TOKEN_ALLOWANCE + PER_MESSAGE_TOKEN_ALLOWANCE * len(messages)
    total += IMAGE_TOKEN_ALLOWANCE * media_parts + _json_bytes(text_only)
    if tools is not None:
        total += _json_bytes(tools)
    if extra is not None:
        total += _json_bytes(extra)
    return total


def image_part_count(messages: Sequence[object]) -> int:
    """How many image parts the messages carry (what a per-image price applies to).

    Args:
        messages: The request's ``messages`` in OpenAI chat format.

    Returns:
        The number of ``image_url`` content parts.
    """
    return sum(1 for part in _parts(messages) if _part_type(part) in _IMAGE_PART_TYPES)


def _split_media(messages: Sequence[object]) -> tuple[int, list[object]]:
    """Count media parts and return the messages without them (their payloads are not text)."""
    media = 0
    text_only: list[object] = []
    for message in messages:
        content = _content(message)
        if content is not None:
            kept = [part for part in content if _part_type(part) not in _MEDIA_PART_TYPES]
            media += len(content) - len(kept)
            message = {**cast("Mapping[str, object]", message), "content": kept}
        text_only.append(message)
    return media, text_only


def _parts(messages: Iterable[object]) -> Iterable[object]:
    for message in messages:
        content = _content(message)
        if content is not None:
            yield from content


def _content(message: object) -> list[object] | None:
    """A message's content when it is a list of parts, else None."""
    if not isinstance(message, Mapping):
        return None
    content = cast("Mapping[str, object]", message).get("content")
    if isinstance(content, list | tuple):
        return list(cast("Iterable[object]", content))
    return None


def _part_type(part: object) -> object:
    return cast("Mapping[str, object]", part).get("type") if isinstance(part, Mapping) else None


def _json_bytes(value: object) -> int:
    # Compact separators and raw (unescaped) non-ASCII keep the bound tight; escapes only lengthen it.
    # surrogatepass: a lone surrogate cannot be UTF-8 encoded strictly, yet occupies three bytes.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
    return len(text.encode("utf-8", "surrogatepass"))


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(cast("Mapping[object, object]", value))
    raise TypeError(f"not JSON data: {type(value).__name__}")

"""What the sandbox says: a deterministic answer planned from a Chat Completions request.

Planning is separate from the wire so the same answer can be sent whole or streamed. An answer is
made of sandbox tokens: whitespace-delimited words with their trailing whitespace, one streamed chunk
each; tool call arguments count one token per 4 characters, streamed in 4-character fragments.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from wattfare.server.upstream.sandbox.cues import Cues
from wattfare.server.upstream.sandbox.schema import value_for_schema

__all__ = ["Answer", "Choice", "ToolCall", "count_prompt_tokens", "message_text", "plan_answer"]

DEFAULT_LONG_TOKENS = 4096
ARGUMENT_CHARS_PER_TOKEN = 4
_MAX_CHOICES = 128
_MAX_LONG_TOKENS = 65_536  # bounds memory when the proxy clamps max_tokens to a huge affordable value
_EXCERPT = 60
_MAGIC = re.compile(r"\[sandbox:([a-z_]+)\]")
_TOKEN = re.compile(r"\s*\S+\s*|\s+")
_EMPTY: Mapping[str, Any] = {}
_FILLER = (
    "amber", "quiet", "river", "lantern", "orbit", "meadow", "copper", "signal", "harbor", "willow",
    "ember", "canyon", "pixel", "marble", "breeze", "cobalt", "summit", "thistle", "comet", "garnet",
    "lagoon", "prism", "cedar", "falcon", "velvet", "glacier", "saffron", "tundra", "beacon", "coral",
    "juniper", "quartz", "ripple", "sable", "tidal", "umber", "vapor", "zephyr", "alder", "basalt",
    "cinder", "delta", "fennel", "grove", "heron", "indigo", "jasper", "kestrel", "lumen", "mosaic",
    "nimbus", "onyx", "pebble", "quill", "russet", "sorrel", "timber", "ultra", "verdant", "wren",
    "xenon", "yarrow", "zinc", "aurora",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the sandbox makes.

    Attributes:
        id: a deterministic `call_…` id.
        name: the called function's name.
        arguments: the JSON arguments text (possibly cut short by `max_tokens`).
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of the answer: either content tokens or tool calls.

    Attributes:
        tokens: the content, as sandbox tokens (their concatenation is the content).
        tool_calls: the function calls, when the sandbox calls tools.
        finish_reason: "stop", "length" or "tool_calls".
    """

    tokens: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str

    @property
    def content(self) -> str:
        """The whole content text."""
        return "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        """Sandbox tokens this choice costs."""
        arguments = sum(math.ceil(len(call.arguments) / ARGUMENT_CHARS_PER_TOKEN) for call in self.tool_calls)
        return len(self.tokens) + arguments


@dataclass(frozen=True, slots=True)
class Answer:
    """The planned answer to one request.

    Attributes:
        choices: one per requested `n`.
        prompt_tokens: the deterministic prompt token count.
        magic: the `[sandbox:…]` markers found in the last user message (e.g. "slow").
    """

    choices: tuple[Choice, ...]
    prompt_tokens: int
    magic: frozenset[str]

    @property
    def completion_tokens(self) -> int:
        """Sandbox tokens of all choices."""
        return sum(choice.completion_tokens for choice in self.choices)


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message's `content` (a string, or the text parts of a content list)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = [_mapping(part) for part in _sequence(content)]
    return "\n".join(str(part.get("text", "")) for part in parts if part.get("type") == "text")


def count_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A prompt token count that never exceeds the UTF-8 byte length of the messages' text.

    ceil(bytes / 4) plus 3 per message, capped at the byte length: the proxy's worst-case estimate
    (bytes plus a per-message allowance) is then always an upper bound of what the sandbox reports.
    """
    size = sum(len(message_text(message).encode()) for message in messages)
    return min(math.ceil(size / 4) + 3 * len(messages), size)


def plan_answer(payload: Mapping[str, Any]) -> Answer:
    """Plan the sandbox's answer to a Chat Completions request body.

    Args:
        payload: the parsed request body.

    Returns:
        The answer: choices (content tokens or tool calls), prompt tokens and magic markers.
    """
    messages = [_mapping(message) for message in _sequence(payload.get("messages"))]
    last = messages[-1] if messages else _EMPTY
    user = next((message for message in reversed(messages) if message.get("role") == "user"), _EMPTY)
    user_text = message_text(user)
    magic = frozenset(_MAGIC.findall(user_text))
    digest = hashlib.sha256(orjson.dumps(messages, default=_jsonable, option=orjson.OPT_SORT_KEYS)).digest()
    seed = payload.get("seed")
    limit = _int(payload.get("max_completion_tokens"))
    if limit is None:
        limit = _int(payload.get("max_tokens"))
    stops = [stop for stop in (payload.get("stop"), *_sequence(payload.get("stop"))) if isinstance(stop, str) and stop]
    functions = [_mapping(_mapping(tool).get("function")) for tool in _sequence(payload.get("tools"))]
    tools = [function for function in functions if isinstance(function.get("name"), str)]
    tool_choice = payload.get("tool_choice")
    calls_tools = bool(tools) and tool_choice != "none" and last.get("role") == "user"
    count = min(max(_int(payload.get("n")) or 1, 1), _MAX_CHOICES)
    cues = Cues.read(_MAGIC.sub(" ", user_text))

    choices: list[Choice] = []
    for index in range(count):
        key = b"%s|%r|%d" % (digest, seed if isinstance(seed, int) else None, index)
        if calls_tools:
            picked = _pick_tools(tools, tool_choice, user_text, payload.get("parallel_tool_calls") is not False)
            choices.append(_tool_choice(picked, cues, key, limit))
            continue
        if last.get("role") == "tool":
            text = f"Sandbox read the tool result: {_excerpt(message_text(last))}"
        elif user:
            text = f"Sandbox reply to: {_excerpt(user_text)}"
        else:
            text = "Sandbox reply."
        long = "long" in magic
        filler = _filler(key, min(DEFAULT_LONG_TOKENS if limit is None else limit, _MAX_LONG_TOKENS) if long else None)
        content = _structured(payload.get("response_format"), text, filler, cues)
        if content is None:
            content = f"{text} {filler}"
        choices.append(_text_choice(content, stops, limit))
    return Answer(tuple(choices), count_prompt_tokens(messages), magic)


def _text_choice(content: str, stops: list[str], limit: int | None) -> Choice:
    cut = min((index for stop in stops if (index := content.find(stop)) >= 0), default=-1)
    if cut >= 0:
        content = content[:cut]
    tokens = tuple(_TOKEN.findall(content))
    if limit is not None and len(tokens) > limit:
        return Choice(tokens[: max(limit, 0)], (), "length")
    return Choice(tokens, (), "stop")


def _tool_choice(tools: list[Mapping[str, Any]], cues: Cues, key: bytes, limit: int | None) -> Choice:
    budget = None if limit is None else max(limit, 0) * ARGUMENT_CHARS_PER_TOKEN
    calls: list[ToolCall] = []
    finish = "tool_calls"
    for position, tool in enumerate(tools):
        arguments = orjson.dumps(value_for_schema(_mapping(tool.get("parameters")), cues)).decode()
        if budget is not None:
            if len(arguments) > budget:
                arguments, finish = arguments[:budget], "length"
            budget -= len(arguments)
        call_id = "call_" + hashlib.sha256(key + b"|call|%d" % position).hexdigest()[:24]
        calls.append(ToolCall(call_id, str(tool.get("name", "")), arguments))
        if finish == "length":
            break
    return Choice((), tuple(calls), finish)


def _pick_tools(
    tools: list[Mapping[str, Any]], tool_choice: object, user_text: str, parallel: bool
) -> list[Mapping[str, Any]]:
    forced = _mapping(_mapping(tool_choice).get("function")).get("name")
    if isinstance(forced, str):
        # A forced tool missing from `tools` is still called, with empty arguments.
        return [next((tool for tool in tools if tool.get("name") == forced), {"name": forced})]
    named = [tool for tool in tools if _names(user_text, str(tool.get("name", "")))]
    if not named:
        return tools[:1]
    return named if parallel else named[:1]


def _names(text: str, name: str) -> bool:
    return bool(name) and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _structured(response_format: object, text: str, filler: str, cues: Cues) -> str | None:
    form = _mapping(response_format)
    schema = _mapping(_mapping(form.get("json_schema")).get("schema"))
    if form.get("type") == "json_schema" and schema:
        value = value_for_schema(schema, cues)
    elif form.get("type") in ("json_object", "json_schema"):
        value = {"reply": text, "detail": filler}
    else:
        return None
    # Spaced separators keep the JSON text made of several sandbox tokens, like a model's output.
    return json.dumps(value, ensure_ascii=False)


def _filler(key: bytes, count: int | None) -> str:
    stream = hashlib.sha256(key).digest()
    if count is None:
        count = 12 + stream[0] % 20
    words: list[str] = []
    block = 0
    while len(words) < count:
        stream = hashlib.sha256(key + b"|%d" % block).digest()
        words.extend(_FILLER[byte % len(_FILLER)] for byte in stream)
        block += 1
    return " ".join(words[:count]) + "."


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:_EXCERPT]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def _sequence(value: object) -> list[Any]:
    return list(cast(Sequence[Any], value)) if isinstance(value, list | tuple) else []


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(cast(Mapping[str, Any], value))
    if isinstance(value, tuple):
        return list(cast(tuple[Any, ...], value))
    return str(value)

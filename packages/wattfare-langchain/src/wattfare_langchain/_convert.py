"""LangChain messages to the OpenAI wire, and Wattfare's completions and chunks back to LangChain.

I/O-free: `ChatWattfare` sends what `to_openai_messages` builds through the core client and turns
what comes back into `ChatResult`s and `ChatGenerationChunk`s here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Protocol, cast

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    UsageMetadata,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from wattfare import ChatCompletion, ChatCompletionChunk, Choice, DeltaToolCall, Usage, WattfareInfo

PROVIDER: Final = "wattfare"
# Fields some upstreams (OpenRouter, DeepSeek) add to a message for the model's reasoning text.
_REASONING_FIELDS: Final = ("reasoning_content", "reasoning")


# ---------------------------------------------------------------- requests


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI chat messages (tool calls and tool results included)."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        wire = convert_to_openai_messages(message)
        if isinstance(message, AIMessage):
            # An assistant turn goes back as its text and its tool calls: provider-specific blocks
            # (reasoning, v1 tool_call blocks, Anthropic tool_use) are not OpenAI content parts.
            text = message.text
            wire["content"] = text if text or not wire.get("tool_calls") else None
        elif wire.get("role") == "tool":
            # OpenAI's tool message has no `name`; strict upstreams reject it.
            wire.pop("name", None)
        converted.append(wire)
    return converted


def tool_choice_param(tool_choice: object, tool_names: Sequence[str]) -> str | dict[str, Any] | None:
    """LangChain's `tool_choice` on the OpenAI wire.

    Args:
        tool_choice: `"auto"`, `"none"`, `"required"`, `"any"` (= required), a tool name, True (the only
            tool), an OpenAI tool-choice dict, or None/False (the model decides).
        tool_names: The names of the bound tools.

    Raises:
        ValueError: The choice names no bound tool, or is True with several tools.
    """
    if tool_choice is None or tool_choice is False:
        return None
    if tool_choice is True:
        if len(tool_names) != 1:
            raise ValueError(f"tool_choice=True needs exactly one tool, got {len(tool_names)}")
        return _function_choice(tool_names[0])
    if isinstance(tool_choice, str):
        if tool_choice in ("auto", "none", "required"):
            return tool_choice
        if tool_choice == "any":
            return "required"
        if tool_choice not in tool_names:
            raise ValueError(f"tool_choice {tool_choice!r} is not one of the bound tools {list(tool_names)}")
        return _function_choice(tool_choice)
    if isinstance(tool_choice, Mapping):
        return dict(tool_choice)  # pyright: ignore[reportUnknownArgumentType]
    raise ValueError(f"unsupported tool_choice {tool_choice!r}")


def _function_choice(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


# ---------------------------------------------------------------- responses


def usage_metadata(usage: Usage) -> UsageMetadata:
    """OpenAI usage as LangChain's `UsageMetadata` (cached and reasoning tokens when reported)."""
    meta = UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    )
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None
    if cached is not None:
        meta["input_token_details"] = InputTokenDetails(cache_read=cached)
    reasoning = usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else None
    if reasoning is not None:
        meta["output_token_details"] = OutputTokenDetails(reasoning=reasoning)
    return meta


def _usd(amount: Decimal | None) -> str | None:
    # A decimal string: exact (never a float) and JSON-safe wherever messages get stored.
    return None if amount is None else format(amount, "f")


def wattfare_metadata(info: WattfareInfo) -> dict[str, Any]:
    """Wattfare's part of `response_metadata`.

    The cost and the budget left (decimal USD strings), the request id, the `max_tokens` Wattfare sent, and
    `clamped`: True when Wattfare lowered `max_tokens` because the user's cap is nearly used (None: not said).
    """
    return {
        "cost_usd": _usd(info.cost_usd),
        "remaining_usd": _usd(info.remaining_usd),
        "request_id": info.request_id,
        "max_tokens": info.max_tokens,
        "clamped": info.clamped,
    }


def chat_result(completion: ChatCompletion) -> ChatResult:
    """A whole completion as a `ChatResult`: one generation per choice, usage and cost on each message."""
    usage = usage_metadata(completion.usage) if completion.usage is not None else None
    base: dict[str, Any] = {
        "model_name": completion.model,
        "model_provider": PROVIDER,
        "id": completion.id,
        "system_fingerprint": completion.system_fingerprint,
        "wattfare": wattfare_metadata(completion.wattfare),
    }
    if completion.usage is not None:
        base["token_usage"] = completion.usage.model_dump(mode="json", exclude_none=True)
    generations = [_generation(choice, completion.id, base, usage) for choice in completion.choices]
    llm_output = {key: base[key] for key in ("model_name", "system_fingerprint", "wattfare")}
    llm_output["token_usage"] = base.get("token_usage", {})
    return ChatResult(generations=generations, llm_output=llm_output)


def _generation(choice: Choice, message_id: str, base: dict[str, Any], usage: UsageMetadata | None) -> ChatGeneration:
    message = choice.message
    tool_calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    raw_calls = [call.model_dump(mode="json", exclude_none=True) for call in message.tool_calls or ()]
    for raw in raw_calls:
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except OutputParserException as exc:  # arguments that are not JSON
            invalid.append(make_invalid_tool_call(raw, str(exc)))
            continue
        args: object = parsed["args"] if parsed is not None else None
        if parsed is None or not isinstance(args, dict):
            invalid.append(make_invalid_tool_call(raw, "the arguments are not a JSON object"))
        else:
            tool_calls.append(ToolCall(name=parsed["name"], args=cast(dict[str, Any], args), id=parsed["id"]))
    additional: dict[str, Any] = {}
    if raw_calls:
        additional["tool_calls"] = raw_calls
    if message.refusal:
        additional["refusal"] = message.refusal
    reasoning = _reasoning(message.model_extra)
    if reasoning:
        additional["reasoning_content"] = reasoning
    metadata = {**base, "finish_reason": choice.finish_reason}
    logprobs = (choice.model_extra or {}).get("logprobs")
    if logprobs is not None:
        metadata["logprobs"] = logprobs
    ai = AIMessage(
        content=message.content or "",
        id=message_id or None,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        additional_kwargs=additional,
        response_metadata=metadata,
        usage_metadata=usage if choice.index == 0 else None,
    )
    return ChatGeneration(message=ai, generation_info={"finish_reason": choice.finish_reason})


def _reasoning(extra: Mapping[str, Any] | None) -> str | None:
    for name in _REASONING_FIELDS:
        value = (extra or {}).get(name)
        if isinstance(value, str) and value:
            return value
    return None


# ---------------------------------------------------------------- streams


class StreamOutcome(Protocol):
    """What a finished core stream (`ChatStream` / `AsyncChatStream`) knows."""

    @property
    def usage(self) -> Usage | None: ...
    @property
    def cost_usd(self) -> Decimal | None: ...
    @property
    def remaining_usd(self) -> Decimal | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def clamped(self) -> bool | None: ...
    @property
    def finish_reason(self) -> str | None: ...


class ChunkConverter:
    """Turns one stream's chunks into `ChatGenerationChunk`s, then a closing chunk with usage and cost.

    Only the closing chunk carries usage, the model name and the finish reason, so that adding the
    chunks up counts each once (LangChain sums usage and concatenates strings across chunks).
    """

    def __init__(self) -> None:
        self._id: str | None = None
        self._model = ""
        self._fingerprint: str | None = None

    def convert(self, chunk: ChatCompletionChunk) -> ChatGenerationChunk | None:
        """The LangChain chunk for a core chunk, or None when it adds nothing to the first choice."""
        self._id = self._id or chunk.id or None
        self._model = self._model or chunk.model
        self._fingerprint = self._fingerprint or chunk.system_fingerprint
        choice = next((c for c in chunk.choices if c.index == 0), None)
        if choice is None:
            return None
        delta = choice.delta
        calls = delta.tool_calls or []
        additional: dict[str, Any] = {}
        if calls:
            additional["tool_calls"] = [_raw_delta_call(call) for call in calls]
        if delta.refusal:
            additional["refusal"] = delta.refusal
        reasoning = _reasoning(delta.model_extra)
        if reasoning:
            additional["reasoning_content"] = reasoning
        if not delta.content and not additional:
            return None
        message = AIMessageChunk(
            content=delta.content or "",
            id=self._id,
            additional_kwargs=additional,
            tool_call_chunks=[
                tool_call_chunk(
                    name=call.function.name if call.function else None,
                    args=call.function.arguments if call.function else None,
                    id=call.id,
                    index=call.index,
                )
                for call in calls
            ],
            response_metadata={"model_provider": PROVIDER},
        )
        return ChatGenerationChunk(message=message)

    def last(self, stream: StreamOutcome) -> ChatGenerationChunk:
        """The closing chunk: usage, model name, finish reason, cost, budget left and clamping."""
        info = WattfareInfo(
            cost_usd=stream.cost_usd,
            remaining_usd=stream.remaining_usd,
            request_id=stream.request_id,
            max_tokens=stream.max_tokens,
            clamped=stream.clamped,
        )
        metadata: dict[str, Any] = {
            "model_name": self._model,
            "model_provider": PROVIDER,
            "finish_reason": stream.finish_reason,
            "system_fingerprint": self._fingerprint,
            "wattfare": wattfare_metadata(info),
        }
        if stream.usage is not None:
            metadata["token_usage"] = stream.usage.model_dump(mode="json", exclude_none=True)
        message = AIMessageChunk(
            content="",
            id=self._id,
            usage_metadata=usage_metadata(stream.usage) if stream.usage is not None else None,
            response_metadata=metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": stream.finish_reason})


def _raw_delta_call(call: DeltaToolCall) -> dict[str, Any]:
    # The OpenAI delta as langchain-openai keeps it in additional_kwargs (merged by index when added up).
    function = call.function
    return {
        "index": call.index,
        "id": call.id,
        "type": call.type,
        "function": {
            "name": function.name if function else None,
            "arguments": function.arguments if function else None,
        },
    }

"""Wattfare completions and chunks to LlamaIndex `ChatResponse`s, with usage and cost attached.

Where things go, so that LlamaIndex's own readers find them:
- the assistant's text is a `TextBlock`, each tool call a `ToolCallBlock` and, in the OpenAI shape,
  in `message.additional_kwargs["tool_calls"]` (LlamaIndex's streaming structured output reads that);
  reasoning text (OpenRouter's `reasoning`) is a `ThinkingBlock`, streamed as `thinking_delta`;
- `raw` is the completion (or chunk) as JSON-ready data: `raw["usage"]` is what `TokenCountingHandler`
  reads, `raw["wattfare"]` holds the cost, the budget left, the request id, `max_tokens` (what Wattfare
  sent upstream) and `clamped` (True when the user's nearly used cap lowered it);
- `additional_kwargs` has `prompt_tokens`, `completion_tokens`, `total_tokens` (as LlamaIndex's OpenAI
  LLM does) and Wattfare's `cost_usd`, `remaining_usd` (Decimals), `request_id`, `max_tokens` and `clamped`.

A stream yields one `ChatResponse` per chunk, each carrying the whole message so far (LlamaIndex's agents
keep only the last one) and `delta`, the text that chunk added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ContentBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from wattfare import ChatCompletion, ChatCompletionChunk, Usage, WattfareInfo

__all__ = ["StreamState", "chat_response"]

_REASONING = "reasoning"


def chat_response(completion: ChatCompletion) -> ChatResponse:
    """The `ChatResponse` for a whole completion (its first choice)."""
    message = completion.choices[0].message if completion.choices else None
    calls = [
        _Call(call.id, call.function.name, call.function.arguments)
        for call in (message.tool_calls if message else None) or ()
    ]
    reasoning = (message.model_extra or {}).get(_REASONING) if message else None
    return ChatResponse(
        message=_assistant(
            (message.content if message else None) or "", calls, reasoning if isinstance(reasoning, str) else ""
        ),
        raw=completion.model_dump(mode="json"),
        additional_kwargs=_accounting(completion.usage, completion.wattfare),
    )


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    arguments: str


class Clamping(Protocol):
    """What a core stream knows of its `max_tokens` (from its headers, then from its final chunk)."""

    @property
    def max_tokens(self) -> int | None: ...
    @property
    def clamped(self) -> bool | None: ...


@dataclass(slots=True)
class StreamState:
    """Folds a stream's chunks into `ChatResponse`s, each with the whole message so far."""

    content: str = ""
    reasoning: str = ""
    calls: dict[int, _Call] = field(default_factory=dict[int, _Call])
    responses: int = 0

    def add(self, chunk: ChatCompletionChunk, stream: Clamping | None = None) -> ChatResponse:
        """The `ChatResponse` after this chunk.

        Args:
            chunk: The chunk, already read from `stream`.
            stream: The core stream it came from: the chunk carrying Wattfare's block gets the stream's
                `max_tokens` and `clamped`, so a final chunk that does not repeat them keeps what the
                response headers said.
        """
        delta = ""
        thinking = ""
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            piece = choice.delta
            delta += piece.content or ""
            extra = (piece.model_extra or {}).get(_REASONING)
            thinking += extra if isinstance(extra, str) else ""
            for fragment in piece.tool_calls or ():
                call = self.calls.setdefault(fragment.index, _Call("", "", ""))
                # Ids are never split (some providers repeat them); names and arguments arrive in pieces.
                call.id = call.id or fragment.id or ""
                if fragment.function is not None:
                    call.name += fragment.function.name or ""
                    call.arguments += fragment.function.arguments or ""
        self.content += delta
        self.reasoning += thinking
        self.responses += 1
        if chunk.wattfare is not None and stream is not None:
            clamping = {"max_tokens": stream.max_tokens, "clamped": stream.clamped}
            chunk = chunk.model_copy(update={"wattfare": chunk.wattfare.model_copy(update=clamping)})
        accounting = _accounting(chunk.usage, chunk.wattfare)
        if thinking:
            accounting["thinking_delta"] = thinking
        return ChatResponse(
            message=self.message(),
            delta=delta,
            raw=chunk.model_dump(mode="json"),
            additional_kwargs=accounting,
        )

    def message(self) -> ChatMessage:
        """The assistant message so far."""
        return _assistant(self.content, [self.calls[index] for index in sorted(self.calls)], self.reasoning)


def _assistant(content: str, calls: list[_Call], reasoning: str) -> ChatMessage:
    blocks: list[ContentBlock] = []
    if reasoning:
        blocks.append(ThinkingBlock(content=reasoning))
    if content:
        blocks.append(TextBlock(text=content))
    blocks.extend(
        ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=call.arguments) for call in calls
    )
    additional: dict[str, Any] = {}
    if calls:
        additional["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in calls
        ]
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=additional)


def _accounting(usage: Usage | None, info: WattfareInfo | None) -> dict[str, Any]:
    accounting: dict[str, Any] = {}
    if usage is not None:
        accounting["prompt_tokens"] = usage.prompt_tokens
        accounting["completion_tokens"] = usage.completion_tokens
        accounting["total_tokens"] = usage.total_tokens
    if info is not None and (info.cost_usd is not None or info.request_id is not None):
        accounting["cost_usd"] = info.cost_usd
        accounting["remaining_usd"] = info.remaining_usd
        accounting["request_id"] = info.request_id
        accounting["max_tokens"] = info.max_tokens
        accounting["clamped"] = info.clamped
    return accounting

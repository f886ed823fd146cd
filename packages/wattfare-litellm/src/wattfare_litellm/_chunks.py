"""Wattfare stream chunks as LiteLLM's `GenericStreamingChunk`s.

LiteLLM reads one tool-call delta per generic chunk, so a chunk carrying several is split. The
finish reason is held back and sent with the usage in one last chunk: Wattfare's stream ends
with a choice-less chunk carrying usage and the charge, which LiteLLM turns into the final
chunk's `usage` (with `cost`) and the call's `response_cost`. That last chunk also carries Wattfare's
block (cost, budget left, request id, `max_tokens`, `clamped`) as `provider_specific_fields["wattfare"]`,
which LiteLLM puts on the delta of the chunk before the finish reason.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from litellm.types.llms.openai import ChatCompletionToolCallChunk, ChatCompletionUsageBlock
from litellm.types.utils import GenericStreamingChunk

from wattfare import ChatCompletionChunk, DeltaToolCall, Usage, WattfareInfo
from wattfare_litellm._response import usage_block, wattfare_fields


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


def _tool_use(call: DeltaToolCall) -> ChatCompletionToolCallChunk:
    function = call.function
    return {
        "id": call.id,
        "type": "function",
        "function": {
            "name": function.name if function is not None else None,
            "arguments": (function.arguments if function is not None else None) or "",
        },
        "index": call.index,
    }


class ChunkTranslator:
    """Translates one stream's chunks in order; `final` gives the closing chunk once the stream has ended."""

    def __init__(self) -> None:
        self._finish_reason: str | None = None

    def translate(self, chunk: ChatCompletionChunk) -> list[GenericStreamingChunk]:
        """The generic chunks for one Wattfare chunk (none for a role-only or usage-only chunk)."""
        out: list[GenericStreamingChunk] = []
        for choice in chunk.choices:
            if choice.finish_reason and choice.index == 0:
                self._finish_reason = choice.finish_reason
            text = choice.delta.content or ""
            calls = choice.delta.tool_calls or []
            for position, call in enumerate(calls):
                out.append(
                    {
                        "text": text if position == 0 else "",
                        "tool_use": _tool_use(call),
                        "is_finished": False,
                        "finish_reason": "",
                        "usage": None,
                        "index": choice.index,
                    }
                )
            if text and not calls:
                out.append(
                    {
                        "text": text,
                        "tool_use": None,
                        "is_finished": False,
                        "finish_reason": "",
                        "usage": None,
                        "index": choice.index,
                    }
                )
        return out

    def final(self, stream: StreamOutcome) -> GenericStreamingChunk:
        """The closing chunk: the finish reason, the usage with Wattfare's charge as `cost`, and Wattfare's block."""
        block = usage_block(stream.usage, stream.cost_usd)
        info = WattfareInfo(
            cost_usd=stream.cost_usd,
            remaining_usd=stream.remaining_usd,
            request_id=stream.request_id,
            max_tokens=stream.max_tokens,
            clamped=stream.clamped,
        )
        # `cost` is not declared on LiteLLM's TypedDict, but LiteLLM reads it into `Usage.cost`.
        typed: ChatCompletionUsageBlock | None = block  # pyright: ignore[reportAssignmentType]
        return {
            "text": "",
            "tool_use": None,
            "is_finished": True,
            "finish_reason": self._finish_reason or "stop",
            "usage": typed,
            "index": 0,
            "provider_specific_fields": {"wattfare": wattfare_fields(info)},
        }

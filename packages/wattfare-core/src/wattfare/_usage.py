"""I/O-free folding of a chat stream's chunks into its outcome: usage, cost, finish reason, the whole message.

Content is concatenated per choice; tool calls are merged by their `index` (the first fragment
brings the id and name, later ones append to the arguments). Wattfare's last chunk brings `usage`
and the `wattfare` block (cost, budget left, the `max_tokens` sent and whether the cap lowered it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from wattfare._types import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
    WattfareInfo,
)

__all__ = ["StreamAccumulator"]


@dataclass(slots=True)
class _ToolCallParts:
    id: str | None = None
    type: str | None = None
    name: list[str] = field(default_factory=list[str])
    arguments: list[str] = field(default_factory=list[str])


@dataclass(slots=True)
class _ChoiceParts:
    role: str | None = None
    content: list[str] = field(default_factory=list[str])
    refusal: list[str] = field(default_factory=list[str])
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict[int, _ToolCallParts])
    # Text fields that providers add to deltas (OpenRouter's `reasoning`, ...), concatenated like content.
    extra_text: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    finish_reason: str | None = None

    def add(self, choice: ChunkChoice) -> None:
        delta = choice.delta
        if delta.role and self.role is None:
            self.role = delta.role
        if delta.content:
            self.content.append(delta.content)
        if delta.refusal:
            self.refusal.append(delta.refusal)
        for fragment in delta.tool_calls or ():
            parts = self.tool_calls.setdefault(fragment.index, _ToolCallParts())
            # Ids and types are never split; some providers repeat them on every fragment.
            parts.id = parts.id or fragment.id
            parts.type = parts.type or fragment.type
            if fragment.function is not None:
                if fragment.function.name:
                    parts.name.append(fragment.function.name)
                if fragment.function.arguments:
                    parts.arguments.append(fragment.function.arguments)
        for key, value in (delta.model_extra or {}).items():
            if isinstance(value, str) and value:
                self.extra_text.setdefault(key, []).append(value)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason

    def choice(self, index: int) -> Choice:
        tool_calls = [
            ToolCall(
                id=parts.id or "",
                type=parts.type or "function",
                function=FunctionCall(name="".join(parts.name), arguments="".join(parts.arguments)),
            )
            for _, parts in sorted(self.tool_calls.items())
        ]
        message = Message(
            role=self.role or "assistant",
            content="".join(self.content) if self.content else None,
            refusal="".join(self.refusal) if self.refusal else None,
            tool_calls=tool_calls or None,
            **{key: "".join(values) for key, values in self.extra_text.items()},
        )
        return Choice(index=index, message=message, finish_reason=self.finish_reason)


class StreamAccumulator:
    """Folds `ChatCompletionChunk`s, in order, into the stream's final usage, cost and completion.

    Args:
        request_id: The stream's request id (`Wattfare-Request-Id`), if known before the chunks.
        remaining_usd: The budget left before the request (`Wattfare-Remaining-Usd`), if known.
        max_tokens: The `max_tokens` Wattfare sent upstream (`Wattfare-Max-Tokens`), if known.
        clamped: Whether the cap lowered it (`Wattfare-Clamped`), if known.
    """

    def __init__(
        self,
        *,
        request_id: str | None = None,
        remaining_usd: Decimal | None = None,
        max_tokens: int | None = None,
        clamped: bool | None = None,
    ) -> None:
        self._choices: dict[int, _ChoiceParts] = {}
        self._first: ChatCompletionChunk | None = None
        self._usage: Usage | None = None
        self._cost_usd: Decimal | None = None
        self._remaining_usd = remaining_usd
        self._request_id = request_id
        self._max_tokens = max_tokens
        self._clamped = clamped

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold in the next chunk."""
        if self._first is None:
            self._first = chunk
        for choice in chunk.choices:
            self._choices.setdefault(choice.index, _ChoiceParts()).add(choice)
        if chunk.usage is not None:
            self._usage = chunk.usage
        info = chunk.wattfare
        if info is not None:
            if info.cost_usd is not None:
                self._cost_usd = info.cost_usd
            if "remaining_usd" in info.model_fields_set:
                # An explicit null is news too: the connection has no cap (unlimited).
                self._remaining_usd = info.remaining_usd
            self._request_id = info.request_id or self._request_id
            if "max_tokens" in info.model_fields_set:
                self._max_tokens = info.max_tokens
            if info.clamped is not None:
                self._clamped = info.clamped

    @property
    def usage(self) -> Usage | None:
        """Token counts from the final chunk, or None until it has arrived."""
        return self._usage

    @property
    def cost_usd(self) -> Decimal | None:
        """What the request cost the user, from Wattfare's final chunk, or None until it has arrived."""
        return self._cost_usd

    @property
    def remaining_usd(self) -> Decimal | None:
        """The budget left: after the request once the final chunk is in, before it until then."""
        return self._remaining_usd

    @property
    def request_id(self) -> str | None:
        """Wattfare's id for the request."""
        return self._request_id

    @property
    def max_tokens(self) -> int | None:
        """The `max_tokens` Wattfare sent upstream (None: it sent none, or did not say)."""
        return self._max_tokens

    @property
    def clamped(self) -> bool | None:
        """Whether Wattfare lowered `max_tokens` because the cap is nearly used (None: not said)."""
        return self._clamped

    @property
    def finish_reason(self) -> str | None:
        """Why the first choice stopped (`stop`, `length`, `tool_calls`, ...), or None while it runs."""
        parts = self._choices.get(0)
        return parts.finish_reason if parts else None

    def completion(self) -> ChatCompletion:
        """The chunks so far assembled into one `ChatCompletion` (call it once the stream is done)."""
        first = self._first or ChatCompletionChunk()
        return ChatCompletion(
            id=first.id,
            created=first.created,
            model=first.model,
            system_fingerprint=first.system_fingerprint,
            choices=[parts.choice(index) for index, parts in sorted(self._choices.items())],
            usage=self._usage,
            wattfare=WattfareInfo(
                cost_usd=self._cost_usd,
                remaining_usd=self._remaining_usd,
                request_id=self._request_id,
                max_tokens=self._max_tokens,
                clamped=self._clamped,
            ),
        )

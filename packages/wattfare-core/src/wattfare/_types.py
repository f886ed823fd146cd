"""Wire models: Wattfare's own JSON (camelCase on the wire, snake_case in Python) and OpenAI's chat and embeddings JSON.

Every model allows extra fields, because upstreams add fields and a new one must never break a
client. Money is `Decimal`, never a float: pydantic reads a JSON number into `Decimal(str(x))`.
Times are timezone-aware UTC.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ConnectionLimits",
    "ConnectionStatus",
    "CreatedGrant",
    "CreatedSession",
    "Delta",
    "DeltaFunction",
    "DeltaToolCall",
    "Embedding",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "FunctionCall",
    "GrantStatus",
    "Message",
    "ModelInfo",
    "ModelList",
    "ModelPricing",
    "PromptTokensDetails",
    "ToolCall",
    "TopProvider",
    "Usage",
    "UsageReport",
    "UsageRow",
    "WattfareInfo",
]


def _as_utc(value: datetime) -> datetime:
    # The wire always says UTC; a naive time can only mean UTC, never the machine's local zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class _OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class _WattfareModel(BaseModel):
    # Wattfare's own JSON is camelCase; Python attributes are snake_case and accepted by name too.
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


# ---------------------------------------------------------------- Wattfare's own API


class ConnectionLimits(_WattfareModel):
    """The caps on a connection.

    Attributes:
        monthly_usd: The monthly cap in USD (`monthlyUsd`); None means unlimited.
    """

    monthly_usd: Decimal | None = None


class ConnectionStatus(_WattfareModel):
    """One app user's connection and budget snapshot (`GET /status`); `connected` is False when there is none.

    Attributes:
        connected: Whether the user has an active connection to this app.
        state: `"active"`, `"revoked"`, or None when the user never connected.
        app_user_id: The app's id for the user.
        limits: The connection's caps.
        spent_usd: Spend in the current window (the UTC calendar month).
        remaining_usd: What is left under the cap, after what requests in flight hold; None means unlimited.
        reserved_usd: What the user's requests in flight hold until they settle (`reservedUsd`); None when
            the server does not say (an older one).
        resets_at: When the window resets (UTC).
    """

    connected: bool
    state: str | None = None
    app_user_id: str
    limits: ConnectionLimits = Field(default_factory=ConnectionLimits)
    spent_usd: Decimal
    remaining_usd: Decimal | None = None
    reserved_usd: Decimal | None = None
    resets_at: UtcDatetime


class CreatedSession(_WattfareModel):
    """A session token for the browser's consent popup (`POST /sessions`).

    Attributes:
        token: The signed session token (10 minutes).
        expires_at: When the token expires (UTC; unix seconds on the wire).
        connect_url: The consent page for this token.
    """

    token: str
    expires_at: UtcDatetime
    connect_url: str


class CreatedGrant(_WattfareModel):
    """A one-time grant minted in test mode (`POST /grants`).

    Attributes:
        grant_token: The token to pass to `Wattfare.grant` (sent as `Wattfare-Grant`); a credential, kept out of
            the repr.
        grant_id: The grant's public id (`gr_…`), safe to show and log.
        expires_at: When the grant expires (UTC; unix seconds on the wire).
        requests: How many requests the grant allows.
        max_usd: The most the grant may spend, in USD; None: no dollar cap.
    """

    grant_token: str = Field(repr=False)
    grant_id: str
    expires_at: UtcDatetime
    requests: int
    max_usd: Decimal | None = None


class GrantStatus(_WattfareModel):
    """A one-time grant's state and what is left of it (`GET /grants/current`).

    Attributes:
        grant_id: The grant's public id (`gr_…`).
        state: `"active"`, `"used_up"`, `"expired"` or `"revoked"`; only an active grant serves requests.
        requests_allowed: How many requests the grant allows.
        requests_used: How many it has admitted (a request whose hold was released untouched is given back).
        requests_left: How many it still allows.
        max_usd: The grant's dollar cap; None: none.
        spent_usd: What its settled requests cost.
        reserved_usd: What its requests in flight hold until they settle.
        expires_at: When the grant expires (UTC; unix seconds on the wire).
    """

    grant_id: str
    state: str
    requests_allowed: int
    requests_used: int
    requests_left: int
    max_usd: Decimal | None = None
    spent_usd: Decimal
    reserved_usd: Decimal
    expires_at: UtcDatetime


class ModelPricing(_OpenAIModel):
    """USD per token (decimal strings on the wire, OpenRouter's format); other price kinds are kept as extras."""

    prompt: Decimal
    completion: Decimal


class TopProvider(_OpenAIModel):
    """The serving provider's limits for a model."""

    max_completion_tokens: int | None = None
    context_length: int | None = None


class ModelInfo(_OpenAIModel):
    """One model from `GET /models`, with its price."""

    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None
    context_length: int | None = None
    pricing: ModelPricing
    top_provider: TopProvider | None = None


class ModelList(_OpenAIModel):
    """The `GET /models` body."""

    object: str = "list"
    data: list[ModelInfo]


class UsageRow(_WattfareModel):
    """Spend of one app user on one model over the report's period.

    Attributes:
        endpoint: What the model was called for: `"chat.completions"` or `"embeddings"`; None from a server that
            does not say (an older one).
    """

    app_user_id: str
    model: str
    endpoint: str | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal


class UsageReport(_WattfareModel):
    """The `GET /usage` body: per-user, per-model spend between `start` and `end` (`from`/`to` on the wire).

    Attributes:
        has_more: A page of the whole app's report that another page follows (`usage(limit=…)`).
        next_after: The `after=` of that next page (the last app user of this one); None on the last page.
    """

    start: date | UtcDatetime = Field(alias="from")
    end: date | UtcDatetime = Field(alias="to")
    data: list[UsageRow]
    has_more: bool = False
    next_after: str | None = None


class WattfareInfo(_WattfareModel):
    """What Wattfare adds to a completion: its cost, the budget left, the request id, and whether the cap cut it.

    Attributes:
        cost_usd: What the request cost the user.
        remaining_usd: The budget left under the cap (None: unlimited or unknown).
        request_id: Wattfare's id for the request; quote it in support requests.
        max_tokens: The `max_tokens` Wattfare sent to the model provider (`maxTokens`); None when it sent none
            or did not say.
        clamped: True when Wattfare lowered `max_tokens` because the user's cap is nearly used, so a cut
            answer (finish reason `length`) is the cap's doing; None when the server did not say (an older one).
    """

    cost_usd: Decimal | None = None
    remaining_usd: Decimal | None = None
    request_id: str | None = None
    max_tokens: int | None = None
    clamped: bool | None = None


# ---------------------------------------------------------------- OpenAI Chat Completions


class PromptTokensDetails(_OpenAIModel):
    """Breakdown of prompt tokens."""

    cached_tokens: int | None = None


class CompletionTokensDetails(_OpenAIModel):
    """Breakdown of completion tokens."""

    reasoning_tokens: int | None = None


class Usage(_OpenAIModel):
    """Token counts, and the upstream's reported cost in USD when it gives one."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class FunctionCall(_OpenAIModel):
    """The function a tool call invokes; `arguments` is a JSON string."""

    name: str
    arguments: str


class ToolCall(_OpenAIModel):
    """A tool call in an assistant message."""

    id: str
    type: str = "function"
    function: FunctionCall


class Message(_OpenAIModel):
    """An assistant message."""

    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_OpenAIModel):
    """One choice of a completion."""

    index: int = 0
    message: Message
    finish_reason: str | None = None


class ChatCompletion(_OpenAIModel):
    """An OpenAI chat completion, with Wattfare's cost, remaining budget, request id and clamping on `wattfare`."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    wattfare: WattfareInfo = Field(default_factory=WattfareInfo)


class DeltaFunction(_OpenAIModel):
    """A fragment of a streamed function call; `arguments` arrive in pieces."""

    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(_OpenAIModel):
    """A fragment of a streamed tool call; fragments with the same `index` belong together."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: DeltaFunction | None = None


class Delta(_OpenAIModel):
    """What one chunk adds to a choice's message."""

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(_OpenAIModel):
    """One choice of a streamed chunk."""

    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(_OpenAIModel):
    """An OpenAI chat completion chunk.

    The last data chunk of a Wattfare stream has no choices, carries `usage`, and `wattfare` with
    the cost, the budget left, the request id, the `max_tokens` sent and whether the cap lowered it.
    """

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list[ChunkChoice])
    usage: Usage | None = None
    system_fingerprint: str | None = None
    wattfare: WattfareInfo | None = None


# ---------------------------------------------------------------- OpenAI Embeddings


class Embedding(_OpenAIModel):
    """One input's embedding.

    Attributes:
        index: The position of its input in the request's `input`.
        embedding: The vector as floats, or, when the request asked for `encoding_format="base64"`, the
            base64 of its little-endian float32 bytes, as the server sent it (`EmbeddingResponse.vectors()`
            decodes it).
    """

    object: str = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(_OpenAIModel):
    """Token counts of an embeddings request (there are no completion tokens)."""

    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(_OpenAIModel):
    """OpenAI's embeddings response, with Wattfare's cost, remaining budget and request id on `wattfare`.

    `wattfare.max_tokens` and `wattfare.clamped` are always None: an embedding generates no tokens.
    """

    object: str = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage | None = None
    wattfare: WattfareInfo = Field(default_factory=WattfareInfo)

    def vectors(self) -> list[list[float]]:
        """Every vector as floats, in the order of the request's inputs (base64 ones decoded from float32)."""
        return [_floats(item.embedding) for item in sorted(self.data, key=lambda item: item.index)]


def _floats(embedding: list[float] | str) -> list[float]:
    if isinstance(embedding, list):
        return embedding
    raw = base64.b64decode(embedding)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))

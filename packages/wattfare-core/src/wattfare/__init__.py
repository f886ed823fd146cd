"""Wattfare: your users pay for your app's AI inference.

The SDK for an app's backend. Mint consent sessions, read a user's connection and budget, and
call any model charged to that user:

    >>> from wattfare import Wattfare
    >>> wf = Wattfare()  # doctest: +SKIP  (reads WATTFARE_SECRET_KEY)
    >>> reply = wf.user("user_42").chat(  # doctest: +SKIP
    ...     model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    ... )
    >>> reply.wattfare.cost_usd  # doctest: +SKIP
    Decimal('0.0000123')

A member's one-time grant (N requests, with no app user) is charged the same way, through
`wf.grant(grant_token)`; a spent or unknown grant raises `GrantInvalidError`.

`AsyncWattfare` is the same API with `await`. Errors are typed (`BudgetExceededError`,
`NotConnectedError`, ...); see `wattfare._exceptions` for the tree. An answer that Wattfare shortened
because the cap is nearly used says so: `reply.wattfare.clamped`.

Wattfare's webhooks (a connection approved, a cap crossed, ...) are verified and read into typed events by
`wattfare.webhooks.verify(body, headers, secret)`.
"""

from __future__ import annotations

from wattfare._client import (
    AsyncChatStream,
    AsyncModelHandle,
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
    ChatStream,
    ModelHandle,
    Wattfare,
    WattfareGrant,
    WattfareUser,
)
from wattfare._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetBusyError,
    BudgetExceededError,
    FundingInvalidError,
    GrantInvalidError,
    NotConnectedError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    StreamError,
    UpstreamError,
    UsageError,
    WattfareError,
    WebhookVerificationError,
)
from wattfare._sse import ServerSentEvent, SSEDecoder
from wattfare._types import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
    ConnectionLimits,
    ConnectionStatus,
    CreatedGrant,
    CreatedSession,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    Embedding,
    EmbeddingResponse,
    EmbeddingUsage,
    FunctionCall,
    GrantStatus,
    Message,
    ModelInfo,
    ModelPricing,
    PromptTokensDetails,
    ToolCall,
    TopProvider,
    Usage,
    UsageReport,
    UsageRow,
    WattfareInfo,
)
from wattfare._usage import StreamAccumulator
from wattfare._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncModelHandle",
    "AsyncWattfare",
    "AsyncWattfareGrant",
    "AsyncWattfareUser",
    "AuthenticationError",
    "BadRequestError",
    "BudgetBusyError",
    "BudgetExceededError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
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
    "FundingInvalidError",
    "GrantInvalidError",
    "GrantStatus",
    "Message",
    "ModelHandle",
    "ModelInfo",
    "ModelPricing",
    "NotConnectedError",
    "NotFoundError",
    "PaymentRequiredError",
    "PromptTokensDetails",
    "RateLimitError",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamAccumulator",
    "StreamError",
    "ToolCall",
    "TopProvider",
    "UpstreamError",
    "Usage",
    "UsageError",
    "UsageReport",
    "UsageRow",
    "Wattfare",
    "WattfareError",
    "WattfareGrant",
    "WattfareInfo",
    "WattfareUser",
    "WebhookVerificationError",
    "__version__",
]

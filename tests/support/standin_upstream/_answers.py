"""What the stand-in answers a chat completion or an embedding request with, chosen by the model name (the table in
`__init__`)."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response

PROMPT_PRICE = "0.000001"
COMPLETION_PRICE = "0.000002"
PREMIUM_PROMPT_PRICE = "0.000003"
PREMIUM_COMPLETION_PRICE = "0.000015"
PREMIUM_MAX_OUTPUT = 64_000
NORMAL_TOKENS = 20
SONNET_TOKENS = 200
SONNET_DELAY = 0.01
SLOW_TOKENS = 50
RUNAWAY_TOKENS = 500
TOKENS_BEFORE_FAILURE = 3
ERROR_TYPES = {
    401: "authentication",
    402: "payment_required",
    429: "rate_limit_exceeded",
    500: "server",
    502: "provider_unavailable",
}
MODEL_IDS = (
    "standin/ok",
    "standin/cost-0.000123",
    "standin/long-context",
    *(f"standin/http-{status}" for status in sorted(ERROR_TYPES)),
    "standin/timeout",
    "standin/malformed",
    "standin/midstream-error",
    "standin/hangup",
    "standin/slow",
    "standin/runaway",
    "standin/no-usage",
    "standin/negative-usage",
    "standin/premium",
    "standin/sonnet",
)
# Embedding models, listed at `/v1/embeddings/models` as OpenRouter lists them (prompt price only).
EMBEDDING_PRICE = "0.000001"  # $1 per million input tokens: 1,000 nano-USD a token
EMBEDDING_DIMENSIONS = 8
EMBEDDING_MODEL_IDS = (
    "standin/embed",
    "standin/embed-cost-0.000123",
    "standin/embed-no-usage",
    "standin/embed-negative-usage",
    "standin/embed-undercount",
    "standin/embed-slow",
    "standin/embed-slow-no-usage",
    "standin/embed-timeout",
    "standin/embed-malformed",
    "standin/embed-hangup",
    "standin/embed-error-body",
    *(f"standin/embed-http-{status}" for status in sorted(ERROR_TYPES)),
)


class Hangup(Exception):
    """Raised inside a streaming body: uvicorn then drops the connection mid-answer."""


class Answer:
    """One answer to one request: its tokens, text, usage and finish, whole or as stream events."""

    def __init__(self, payload: dict[str, Any], mode: str, generation: str) -> None:
        self.mode = mode
        limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
        count = {"slow": SLOW_TOKENS, "runaway": RUNAWAY_TOKENS, "sonnet": SONNET_TOKENS}.get(mode, NORMAL_TOKENS)
        self.truncated = mode != "runaway" and isinstance(limit, int) and limit < count
        self.tokens = limit if self.truncated and isinstance(limit, int) else count
        messages = payload.get("messages") or []
        size = sum(len(str(message.get("content") or "").encode()) for message in messages)
        self.prompt_tokens = min(math.ceil(size / 4) + 3 * len(messages), size)
        options = payload.get("stream_options") or {}
        self.include_usage = options.get("include_usage") is True
        # Set by a key's limit (`_openrouter_keys`): the stream stops after this many tokens with a 402 error chunk.
        self.cut_at: int | None = None
        self.head = {
            "id": f"chatcmpl-{generation}",
            "created": int(time.time()),
            "model": str(payload.get("model", "")),
            "system_fingerprint": "standin",
        }

    @property
    def finish_reason(self) -> str:
        return "length" if self.truncated else "stop"

    def text(self, index: int) -> str:
        return f"word{index}" if index == self.tokens - 1 else f"word{index} "

    def usage(self) -> dict[str, Any] | None:
        if self.mode == "no-usage":
            return None
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.tokens,
            "total_tokens": self.prompt_tokens + self.tokens,
        }
        if self.mode == "negative-usage":
            usage = {"prompt_tokens": -self.prompt_tokens, "completion_tokens": -self.tokens, "total_tokens": 0}
        if self.mode.startswith("cost-"):
            usage["cost"] = float(self.mode.removeprefix("cost-"))
            usage["is_byok"] = False
            usage["cost_details"] = {"upstream_inference_cost": None}
        return usage

    def body(self) -> dict[str, Any]:
        if self.mode in ("midstream-error", "hangup"):
            self.tokens = min(self.tokens, TOKENS_BEFORE_FAILURE)
        content = "".join(self.text(index) for index in range(self.tokens))
        body: dict[str, Any] = {
            **self.head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "error" if self.mode == "midstream-error" else self.finish_reason,
                }
            ],
        }
        if self.mode == "midstream-error":
            body["error"] = _error_object(502, "provider_unavailable", "stand-in failed mid-answer")
        elif (usage := self.usage()) is not None:
            body["usage"] = usage
        return body

    async def events(self, delay: float) -> AsyncIterator[bytes]:
        failing = self.mode in ("midstream-error", "hangup")
        for index in range(self.tokens):
            if self.cut_at is not None and index == self.cut_at:
                error = _error_object(402, "payment_required", "Key limit exceeded (stand-in)")
                yield self.event([{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}], error=error)
                return
            if failing and index == TOKENS_BEFORE_FAILURE:
                if self.mode == "hangup":
                    raise Hangup("the stand-in drops the connection mid-stream")
                error = _error_object(502, "provider_unavailable", "stand-in failed mid-stream")
                yield self.event([{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}], error=error)
                return
            if delay and index:
                await asyncio.sleep(delay)
            delta: dict[str, Any] = {"content": self.text(index)}
            if index == 0:
                delta["role"] = "assistant"
            yield self.event([{"index": 0, "delta": delta, "finish_reason": None}])
        yield self.event([{"index": 0, "delta": {}, "finish_reason": self.finish_reason}])
        usage = self.usage()
        # OpenRouter always sends usage (with cost); OpenAI only when asked.
        if usage is not None and (self.include_usage or "cost" in usage):
            yield self.event([], usage=usage)
        yield b"data: [DONE]\n\n"

    def event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {**self.head, "object": "chat.completion.chunk", "choices": choices, **extra}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def hang_up_after(part: bytes) -> AsyncIterator[bytes]:
    """A body that sends `part`, then drops the connection."""
    yield part
    raise Hangup("the stand-in drops the connection mid-body")


def model_entry(model_id: str) -> dict[str, Any]:
    """The model's entry in `GET /v1/models`, priced as OpenRouter lists it."""
    pricing: dict[str, Any] = {"prompt": PROMPT_PRICE, "completion": COMPLETION_PRICE}
    max_output = 4096
    if model_id == "standin/long-context":
        pricing["overrides"] = [{"min_prompt_tokens": 1000, "prompt": "0.000002", "completion": "0.000004"}]
    if model_id in ("standin/premium", "standin/sonnet"):
        pricing = {"prompt": PREMIUM_PROMPT_PRICE, "completion": PREMIUM_COMPLETION_PRICE}
        max_output = PREMIUM_MAX_OUTPUT
    return {
        "id": model_id,
        "name": f"Stand-in: {model_id.removeprefix('standin/')}",
        "created": 1735689600,
        "context_length": 200_000 if model_id in ("standin/premium", "standin/sonnet") else 32768,
        "pricing": pricing,
        "top_provider": {"context_length": 32768, "max_completion_tokens": max_output},
        "supported_parameters": ["max_tokens", "stop", "stream", "tools", "response_format"],
    }


def embedding_model_entry(model_id: str) -> dict[str, Any]:
    """The model's entry in `GET /v1/embeddings/models`: OpenRouter's shape, priced per input token only."""
    return {
        "id": model_id,
        "name": f"Stand-in: {model_id.removeprefix('standin/')}",
        "created": 1735689600,
        "context_length": 8192,
        "pricing": {"prompt": EMBEDDING_PRICE},
        "architecture": {
            "modality": "text->embeddings",
            "input_modalities": ["text"],
            "output_modalities": ["embeddings"],
        },
        "top_provider": {"context_length": 8192, "max_completion_tokens": None},
        "supported_parameters": ["dimensions", "encoding_format"],
    }


def embedding_tokens(item: object) -> int:
    """The stand-in's count of one input's tokens: ceil(UTF-8 bytes / 4) of a string (at least 1), a token array's
    length."""
    if isinstance(item, str):
        return max(1, math.ceil(len(item.encode()) / 4))
    return len(item) if isinstance(item, list) else 1


def embedding_inputs(value: object) -> list[object]:
    """The request's inputs, one per vector (a token array is one input)."""
    if isinstance(value, list) and value and all(isinstance(item, int) for item in value):
        return [value]
    return list(value) if isinstance(value, list) else [value]


def embedding_body(payload: dict[str, Any], mode: str) -> dict[str, Any]:
    """The answer to an embedding request: one small vector per input (`dimensions` honoured), and its usage."""
    inputs = embedding_inputs(payload.get("input"))
    asked = payload.get("dimensions")
    dimensions = asked if isinstance(asked, int) else EMBEDDING_DIMENSIONS
    data: list[dict[str, Any]] = []
    for index, _ in enumerate(inputs):
        vector = [round((index + 1) / (position + 2), 4) for position in range(dimensions)]
        encoded: object = vector
        if payload.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(embedding_tokens(item) for item in inputs)
    body: dict[str, Any] = {"object": "list", "data": data, "model": str(payload.get("model", ""))}
    usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if mode == "embed-negative-usage":
        usage = {"prompt_tokens": -tokens, "total_tokens": -tokens}
    if mode == "embed-undercount":
        usage = {"prompt_tokens": 0, "total_tokens": 0}  # fewer tokens than inputs: no real usage looks like this
    if mode.startswith("embed-cost-"):
        usage["cost"] = float(mode.removeprefix("embed-cost-"))
    if mode == "embed-error-body":
        body["error"] = _error_object(502, "provider_unavailable", "stand-in failed mid-embedding")
    if not mode.endswith("no-usage"):
        body["usage"] = usage
    return body


def _error_object(status: int, error_type: str, message: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"error_type": error_type}
    if status == 402:
        metadata |= {"limit_source": "openrouter_key_limit", "remedy_hint": "raise the key's limit"}
    return {"code": status, "message": message, "metadata": metadata}


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answered in OpenRouter's body."""
    return json_response({"error": _error_object(status, error_type, message)}, status=status, headers=headers)


def json_response(content: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """`content` as a JSON response."""
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)

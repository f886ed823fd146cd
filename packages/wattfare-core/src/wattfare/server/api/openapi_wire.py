"""OpenAI's wire in Wattfare's OpenAPI document: the bodies of the metered endpoints, and the model list.

Bodies Wattfare relays from the model provider (completions, embeddings) are open objects: the fields listed
are those every OpenAI-compatible answer has and the `wattfare` object the proxy adds; a provider may add more.
"""

from __future__ import annotations

from typing import Final

from wattfare.server.api.openapi_schemas import APP_USER_ID, COUNT, USD, Schema, nullable, object_schema, ref

_BODY_USER: Final = (
    "The end user, when the `Wattfare-User` header is absent; with `Wattfare-Grant` it names nobody (OpenAI "
    "clients may send it for abuse tracking)."
)


def wire_schemas() -> dict[str, Schema]:
    """The bodies of OpenAI's wire, by name."""
    wattfare_field = object_schema(
        {
            "requestId": {"type": "string", "description": "Also the `Wattfare-Request-Id` header and the ledger row."},
            "costUsd": {**USD, "description": "What this request was charged (absent when not yet written)."},
            "remainingUsd": {
                **USD,
                "description": "What the payer can still spend: the end user's budget this month, or the grant's "
                "dollar cap over its life.",
            },
            "maxTokens": nullable({"type": "integer", "description": "The `max_tokens` Wattfare sent upstream."}),
            "clamped": {"type": "boolean", "description": "Whether the budget (or grant) lowered `max_tokens`."},
        },
        ("requestId",),
    )
    usage = object_schema({"prompt_tokens": COUNT, "completion_tokens": COUNT, "total_tokens": COUNT})
    message = object_schema(
        {"role": {"type": "string"}, "content": {"description": "Text, or an array of content parts."}}, ("role",)
    )
    return {
        "ChatCompletionRequest": object_schema(
            {
                "model": {"type": "string", "minLength": 1, "maxLength": 256, "examples": ["openai/gpt-4o-mini"]},
                "messages": {"type": "array", "minItems": 1, "items": message},
                "stream": nullable({"type": "boolean"}),
                "max_tokens": nullable({"type": "integer", "minimum": 1, "maximum": 10_000_000}),
                "max_completion_tokens": nullable({"type": "integer", "minimum": 1, "maximum": 10_000_000}),
                "n": nullable({"type": "integer", "minimum": 1, "maximum": 16}),
                "user": {**APP_USER_ID, "description": _BODY_USER},
                "tools": nullable({"type": "array"}),
                "stream_options": nullable({"type": "object"}),
                "response_format": nullable({"type": "object"}),
            },
            ("model", "messages"),
        )
        | {"description": "OpenAI's Chat Completions body; fields Wattfare does not meter pass through untouched."},
        "ChatCompletion": object_schema(
            {
                "id": {"type": "string"},
                "object": {"const": "chat.completion"},
                "created": {"type": "integer"},
                "model": {"type": "string"},
                "choices": {
                    "type": "array",
                    "items": object_schema({"index": {"type": "integer"}, "message": message}),
                },
                "usage": nullable(usage),
                "wattfare": wattfare_field,
            },
            ("choices", "wattfare"),
        ),
        "ChatCompletionChunk": object_schema(
            {
                "id": {"type": "string"},
                "object": {"const": "chat.completion.chunk"},
                "choices": {
                    "type": "array",
                    "items": object_schema({"index": {"type": "integer"}, "delta": {"type": "object"}}),
                },
                "usage": nullable(usage),
                "wattfare": wattfare_field,
            },
            ("choices",),
        )
        | {"description": "One `data:` event of a stream; the last one with `usage` also carries `wattfare`."},
        "ChatCompletionEvent": object_schema(
            {
                "event": {"type": "string"},
                "id": {"type": "string"},
                "data": {
                    "anyOf": [
                        {"const": "[DONE]"},
                        {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"anyOf": [ref("ChatCompletionChunk"), ref("Error")]},
                        },
                    ]
                },
            },
            ("data",),
        )
        | {
            "description": (
                "One Server-Sent Event of a streamed completion (`stream: true`): each `data` a "
                "`ChatCompletionChunk` (the last, with `usage`, carries `wattfare`), then `[DONE]`. A stream Wattfare "
                "must stop (cap, revocation, provider failure) ends with one event holding the error envelope "
                "(`Error`), then `[DONE]`."
            )
        },
        "EmbeddingRequest": object_schema(
            {
                "model": {"type": "string", "minLength": 1, "maxLength": 256},
                "input": {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "minItems": 1, "maxItems": 2048, "items": {"type": "string", "minLength": 1}},
                        {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
                        {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 2048,
                            "items": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
                        },
                    ]
                },
                "dimensions": nullable({"type": "integer", "minimum": 1, "maximum": 8192}),
                "encoding_format": nullable({"enum": ["float", "base64"]}),
                "user": {**APP_USER_ID, "description": _BODY_USER},
            },
            ("model", "input"),
        ),
        "Embeddings": object_schema(
            {
                "object": {"const": "list"},
                "data": {
                    "type": "array",
                    "items": object_schema(
                        {
                            "object": {"const": "embedding"},
                            "index": {"type": "integer"},
                            "embedding": {
                                "anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]
                            },
                        },
                        ("index", "embedding"),
                    ),
                },
                "model": {"type": "string"},
                "usage": nullable(usage),
                "wattfare": wattfare_field,
            },
            ("data", "wattfare"),
        ),
        "Model": object_schema(
            {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
                "name": {"type": "string"},
                "context_length": nullable({"type": "integer"}),
                "pricing": nullable(
                    object_schema(
                        {
                            "prompt": {"type": "string", "description": "USD per input token (a decimal string)."},
                            "completion": {"type": "string", "description": "USD per output token."},
                            "overrides": {
                                "type": "array",
                                "items": {"type": "object"},
                                "description": "Prices from a prompt size on (`min_prompt_tokens`), or by date.",
                            },
                        },
                    )
                    | {"description": "OpenRouter's prices: decimal strings of USD per token (and per request...)."}
                ),
                "top_provider": object_schema({"max_completion_tokens": nullable({"type": "integer"})}),
                "architecture": nullable({"type": "object"}),
                "supported_parameters": nullable({"type": "array", "items": {"type": "string"}}),
            },
            ("id", "object", "pricing"),
        ),
        "ModelList": object_schema(
            {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}, ("data",)
        ),
    }

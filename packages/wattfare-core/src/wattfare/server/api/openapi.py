"""The OpenAPI 3.1 document of Wattfare's HTTP API, served at `GET /api/v1/openapi.json`.

Written as Python data, once: every route of `/api/v1` (and the operator's `/healthz`, `/readyz`, `/metrics`),
its parameters, request and response bodies (the completion's `text/event-stream` included), the three ways a
caller authenticates, and the error envelope with every code. The codes come from `wattfare._error_codes`, and
each error status lists only the codes answered with it, so the document cannot drift from the table the server
and the SDK share. tests/server/api/test_openapi.py validates the document and real answers against it, and
schemathesis fuzzes a running server from it (tests/server/api/test_schemathesis.py).

Bodies Wattfare relays from the model provider (completions, embeddings) are open objects: the fields listed
are those every OpenAI-compatible answer has and the `wattfare` object the proxy adds; a provider may add more.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from wattfare._error_codes import STATUS_BY_CODE
from wattfare._version import __version__
from wattfare.server.api.json_body import json_response

Schema = dict[str, Any]

V1: Final = "/api/v1"
# Codes answered with a status other than their own (STATUS_BY_CODE): an unknown path or method, an oversized
# body, a provider's 422 (`invalid_request`); a browser's unregistered origin (`auth`); a provider's time-out.
_ALSO_ANSWERED: Final[dict[str, tuple[int, ...]]] = {
    "invalid_request": (404, 405, 413, 422),
    "auth": (403,),
    "upstream": (504,),
}
_STATUS_TEXT: Final = {
    400: "Malformed request",
    401: "Missing, invalid or revoked credentials",
    402: "The end user's budget cannot pay",
    403: "Origin not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Body too large",
    422: "The model provider rejected the request",
    429: "Slow down (retry after `Retry-After` seconds)",
    500: "Internal error",
    502: "The model provider failed",
    503: "Wattfare's database is unavailable (retry shortly)",
    504: "The model provider timed out",
}
_OPENAI_ERROR_TYPES: Final = (
    "authentication_error",
    "insufficient_quota",
    "rate_limit_error",
    "invalid_request_error",
    "api_error",
)


def codes_by_status() -> dict[int, list[str]]:
    """Every status an error is answered with, and the codes it may carry (from `wattfare._error_codes`)."""
    table: dict[int, list[str]] = {}
    for code, status in STATUS_BY_CODE.items():
        for answered in (status, *_ALSO_ANSWERED.get(code, ())):
            table.setdefault(answered, []).append(code)
    return {status: sorted(codes) for status, codes in sorted(table.items())}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = False) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": not closed}
    if required:
        schema["required"] = list(required)
    return schema


_USD: Final[Schema] = {"type": "number", "minimum": 0, "description": "US dollars (exact to the nano-dollar)."}
_APP_USER_ID: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "description": "The app's own id for its user (printable text).",
}
_TOKENS: Final[Schema] = {"type": "integer", "minimum": 0}


def _schemas() -> dict[str, Schema]:
    wattfare_field = _object(
        {
            "requestId": {"type": "string", "description": "Also the `Wattfare-Request-Id` header and the ledger row."},
            "costUsd": {**_USD, "description": "What this request was charged (absent when not yet written)."},
            "remainingUsd": {**_USD, "description": "What the end user's budget can still spend this month."},
            "maxTokens": _nullable({"type": "integer", "description": "The `max_tokens` Wattfare sent upstream."}),
            "clamped": {"type": "boolean", "description": "Whether the budget lowered `max_tokens`."},
        },
        ("requestId",),
    )
    usage = _object({"prompt_tokens": _TOKENS, "completion_tokens": _TOKENS, "total_tokens": _TOKENS})
    message = _object(
        {"role": {"type": "string"}, "content": {"description": "Text, or an array of content parts."}}, ("role",)
    )
    return {
        "ErrorCode": {"type": "string", "enum": sorted(STATUS_BY_CODE)},
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": _ref("ErrorCode"),
                        "message": {"type": "string"},
                        "type": {"type": "string", "enum": list(_OPENAI_ERROR_TYPES)},
                        "param": _nullable({"type": "string"}),
                        "resetsAt": {"type": "string", "format": "date-time", "description": "When a cap resets."},
                    },
                    ("code", "message", "type", "param"),
                )
            },
            ("error",),
        ),
        "ChatCompletionRequest": _object(
            {
                "model": {"type": "string", "minLength": 1, "maxLength": 256, "examples": ["openai/gpt-4o-mini"]},
                "messages": {"type": "array", "minItems": 1, "items": message},
                "stream": _nullable({"type": "boolean"}),
                "max_tokens": _nullable({"type": "integer", "minimum": 1, "maximum": 10_000_000}),
                "max_completion_tokens": _nullable({"type": "integer", "minimum": 1, "maximum": 10_000_000}),
                "n": _nullable({"type": "integer", "minimum": 1, "maximum": 16}),
                "user": {**_APP_USER_ID, "description": "The end user, when the `Wattfare-User` header is absent."},
                "tools": _nullable({"type": "array"}),
                "stream_options": _nullable({"type": "object"}),
                "response_format": _nullable({"type": "object"}),
            },
            ("model", "messages"),
        )
        | {"description": "OpenAI's Chat Completions body; fields Wattfare does not meter pass through untouched."},
        "ChatCompletion": _object(
            {
                "id": {"type": "string"},
                "object": {"const": "chat.completion"},
                "created": {"type": "integer"},
                "model": {"type": "string"},
                "choices": {"type": "array", "items": _object({"index": {"type": "integer"}, "message": message})},
                "usage": _nullable(usage),
                "wattfare": wattfare_field,
            },
            ("choices", "wattfare"),
        ),
        "ChatCompletionChunk": _object(
            {
                "id": {"type": "string"},
                "object": {"const": "chat.completion.chunk"},
                "choices": {
                    "type": "array",
                    "items": _object({"index": {"type": "integer"}, "delta": {"type": "object"}}),
                },
                "usage": _nullable(usage),
                "wattfare": wattfare_field,
            },
            ("choices",),
        )
        | {"description": "One `data:` event of a stream; the last one with `usage` also carries `wattfare`."},
        "ChatCompletionEvent": _object(
            {
                "event": {"type": "string"},
                "id": {"type": "string"},
                "data": {
                    "anyOf": [
                        {"const": "[DONE]"},
                        {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"anyOf": [_ref("ChatCompletionChunk"), _ref("Error")]},
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
        "EmbeddingRequest": _object(
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
                "dimensions": _nullable({"type": "integer", "minimum": 1, "maximum": 8192}),
                "encoding_format": _nullable({"enum": ["float", "base64"]}),
                "user": _APP_USER_ID,
            },
            ("model", "input"),
        ),
        "Embeddings": _object(
            {
                "object": {"const": "list"},
                "data": {
                    "type": "array",
                    "items": _object(
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
                "usage": _nullable(usage),
                "wattfare": wattfare_field,
            },
            ("data", "wattfare"),
        ),
        "Model": _object(
            {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
                "name": {"type": "string"},
                "context_length": _nullable({"type": "integer"}),
                "pricing": _nullable(
                    _object(
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
                "top_provider": _object({"max_completion_tokens": _nullable({"type": "integer"})}),
                "architecture": _nullable({"type": "object"}),
                "supported_parameters": _nullable({"type": "array", "items": {"type": "string"}}),
            },
            ("id", "object", "pricing"),
        ),
        "ModelList": _object(
            {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}}, ("data",)
        ),
        "SessionRequest": _object(
            {
                "appUserId": _APP_USER_ID,
                "requestLimit": _object({"monthlyUsd": {"type": "number", "exclusiveMinimum": 0}}, ("monthlyUsd",)),
            },
            ("appUserId",),
        ),
        "Session": _object(
            {
                "token": {"type": "string", "description": "A session token: 10 minutes, one app user."},
                "expiresAt": {"type": "integer", "description": "Unix seconds."},
                "connectUrl": {"type": "string", "format": "uri", "description": "Open it in the consent popup."},
            },
            ("token", "expiresAt", "connectUrl"),
            closed=True,
        ),
        "ConnectionStatus": _object(
            {
                "connected": {"type": "boolean"},
                "state": _nullable({"enum": ["active", "revoked"]}),
                "appUserId": {"type": "string"},
                "limits": _object({"monthlyUsd": _nullable(_USD)}, ("monthlyUsd",), closed=True),
                "spentUsd": _USD,
                "reservedUsd": _USD,
                "remainingUsd": _nullable(_USD),
                "resetsAt": {"type": "string", "format": "date-time"},
            },
            ("connected", "state", "appUserId", "limits", "spentUsd", "remainingUsd", "resetsAt"),
            closed=True,
        ),
        "ApproveConnection": _object({"monthlyUsd": {"type": "number", "exclusiveMinimum": 0}}),
        "Usage": _object(
            {
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "array",
                    "items": _object(
                        {
                            "appUserId": {"type": "string"},
                            "model": {"type": "string"},
                            "endpoint": {"enum": ["chat.completions", "embeddings"]},
                            "requests": _TOKENS,
                            "promptTokens": _TOKENS,
                            "completionTokens": _TOKENS,
                            "costUsd": _USD,
                        },
                        ("appUserId", "model", "endpoint", "requests", "promptTokens", "completionTokens", "costUsd"),
                        closed=True,
                    ),
                },
            },
            ("from", "to", "data"),
            closed=True,
        ),
        "App": _object(
            {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "mode": {"enum": ["test", "live"]},
                "outputAllowanceTokens": _nullable({"type": "integer"}),
                "defaultOutputAllowanceTokens": _object(
                    {"chat": {"type": "integer"}, "reasoning": {"type": "integer"}}, ("chat", "reasoning")
                ),
            },
            ("id", "name", "mode", "outputAllowanceTokens", "defaultOutputAllowanceTokens"),
            closed=True,
        ),
        "AppSettings": _object(
            {"outputAllowanceTokens": _nullable({"type": "integer", "minimum": 1})},
            closed=True,
        ),
        "Ready": _object(
            {
                "status": {"const": "ready"},
                "store": {"const": "ok"},
                "prices": {
                    "type": "object",
                    "additionalProperties": _object(
                        {
                            "source": {"type": "string"},
                            "models": _TOKENS,
                            "ageSeconds": {"type": "number", "minimum": 0},
                            "ok": {"type": "boolean"},
                        },
                        ("source", "models", "ageSeconds", "ok"),
                    ),
                },
            },
            ("status", "store", "prices"),
        ),
    }


def _error_response(status: int, codes: list[str]) -> Schema:
    schema: Schema = {
        "allOf": [
            _ref("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]
    }
    return {
        "description": f"{_STATUS_TEXT.get(status, 'Error')}: `{'`, `'.join(codes)}`.",
        "content": {"application/json": {"schema": schema}},
    }


def _responses() -> dict[str, Schema]:
    return {f"E{status}": _error_response(status, codes) for status, codes in codes_by_status().items()}


def _answers(success: dict[str, Schema], *errors: int) -> dict[str, Schema]:
    answers: dict[str, Schema] = dict(success)
    for status in errors:
        answers[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return answers


def _json(schema_name: str, description: str, headers: dict[str, Schema] | None = None) -> Schema:
    answer: Schema = {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}
    if headers:
        answer["headers"] = headers
    return answer


def _body(schema_name: str, *, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema_name)}}}


_HEADER_TEXT: Final[Schema] = {"schema": {"type": "string"}}
_COST_HEADERS: Final[dict[str, Schema]] = {
    "Wattfare-Request-Id": {**_HEADER_TEXT, "description": "The request's id (also on refusals)."},
    "Wattfare-Cost-Usd": {**_HEADER_TEXT, "description": "What was charged (whole answers)."},
    "Wattfare-Remaining-Usd": {**_HEADER_TEXT, "description": "What the budget can still spend."},
    "Wattfare-Max-Tokens": {**_HEADER_TEXT, "description": "The `max_tokens` sent upstream."},
    "Wattfare-Clamped": {**_HEADER_TEXT, "description": "`true` when the budget lowered `max_tokens`."},
}
_END_USER: Final[Schema] = {
    "name": "Wattfare-User",
    "in": "header",
    "required": False,
    "description": "The end user (the app's id for them); when absent, the body's `user` names them.",
    "schema": _APP_USER_ID,
}
_SECRET: Final[list[dict[str, list[str]]]] = [{"secretKey": []}]
_SESSION: Final[list[dict[str, list[str]]]] = [{"sessionToken": []}, {"sessionToken": [], "publishableKey": []}]
_METERED_ERRORS: Final = (400, 401, 402, 404, 413, 422, 429, 500, 502, 503, 504)


def _paths() -> dict[str, Schema]:
    return {
        f"{V1}/chat/completions": {
            "post": {
                "operationId": "createChatCompletion",
                "summary": "A chat completion, metered against the end user's budget (OpenAI's wire).",
                "security": _SECRET,
                "parameters": [_END_USER],
                "requestBody": _body("ChatCompletionRequest"),
                "responses": _answers(
                    {
                        "200": {
                            "description": "The provider's answer with Wattfare's cost, or its stream.",
                            "headers": _COST_HEADERS,
                            "content": {
                                "application/json": {"schema": _ref("ChatCompletion")},
                                "text/event-stream": {"schema": _ref("ChatCompletionEvent")},
                            },
                        }
                    },
                    *_METERED_ERRORS,
                ),
            }
        },
        f"{V1}/embeddings": {
            "post": {
                "operationId": "createEmbeddings",
                "summary": "Embeddings, metered like completions (OpenAI's wire).",
                "security": _SECRET,
                "parameters": [_END_USER],
                "requestBody": _body("EmbeddingRequest"),
                "responses": _answers(
                    {"200": _json("Embeddings", "The provider's vectors with Wattfare's cost.", _COST_HEADERS)},
                    *_METERED_ERRORS,
                ),
            }
        },
        f"{V1}/models": {
            "get": {
                "operationId": "listModels",
                "summary": "Every model Wattfare can meter in the key's mode, with its prices.",
                "security": _SECRET,
                "responses": _answers({"200": _json("ModelList", "The models.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Mint a 10-minute session token for one app user (the consent popup's).",
                "security": _SECRET,
                "requestBody": _body("SessionRequest"),
                "responses": _answers({"200": _json("Session", "The token.")}, 400, 401, 413, 429, 500, 503),
            }
        },
        f"{V1}/status": {
            "get": {
                "operationId": "getStatus",
                "summary": "An app user's connection and budget (never an error for an unknown user).",
                "security": _SECRET,
                "parameters": [{"name": "appUserId", "in": "query", "required": True, "schema": _APP_USER_ID}],
                "responses": _answers({"200": _json("ConnectionStatus", "The status.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/connections": {
            "get": {
                "operationId": "getConnection",
                "summary": "The browser reads its own connection (session token).",
                "security": _SESSION,
                "responses": _answers({"200": _json("ConnectionStatus", "The status.")}, 400, 401, 403, 500, 503),
            },
            "post": {
                "operationId": "approveConnection",
                "summary": "Approve the connection or change its cap (test mode; live is the member's popup).",
                "security": _SESSION,
                "requestBody": _body("ApproveConnection", required=False),
                "responses": _answers(
                    {"200": _json("ConnectionStatus", "The status after approval.")}, 400, 401, 402, 403, 413, 500, 503
                ),
            },
            "delete": {
                "operationId": "revokeConnection",
                "summary": "The browser disconnects its own user (spending stops at once).",
                "security": _SESSION,
                "responses": _answers({"204": {"description": "Revoked."}}, 400, 401, 403, 500, 503),
            },
        },
        f"{V1}/connections/{{appUserId}}": {
            "delete": {
                "operationId": "disconnectUser",
                "summary": "The app disconnects its user (spending stops at once).",
                "security": _SECRET,
                "parameters": [{"name": "appUserId", "in": "path", "required": True, "schema": _APP_USER_ID}],
                "responses": _answers({"204": {"description": "Disconnected (or was not)."}}, 400, 401, 500, 503),
            }
        },
        f"{V1}/usage": {
            "get": {
                "operationId": "getUsage",
                "summary": "Spend per app user, model and endpoint over a range of days (default: this month).",
                "security": _SECRET,
                "parameters": [
                    {"name": "appUserId", "in": "query", "required": False, "schema": _APP_USER_ID},
                    {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
                ],
                "responses": _answers({"200": _json("Usage", "The spend.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/app": {
            "get": {
                "operationId": "getApp",
                "summary": "The calling app's id, name and settings.",
                "security": _SECRET,
                "responses": _answers({"200": _json("App", "The app.")}, 400, 401, 500, 503),
            },
            "patch": {
                "operationId": "updateApp",
                "summary": "Change the app's settings (`outputAllowanceTokens`).",
                "security": _SECRET,
                "requestBody": _body("AppSettings"),
                "responses": _answers({"200": _json("App", "The app after the change.")}, 400, 401, 413, 500, 503),
            },
        },
        f"{V1}/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process serves HTTP (touches nothing else).",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Alive.",
                        "content": {"application/json": {"schema": _object({"ok": {"const": True}}, ("ok",))}},
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the store answers and every price list is fresh.",
                "security": [],
                "responses": _answers({"200": _json("Ready", "Ready to meter.")}, 503),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (exists only when WATTFARE_METRICS_TOKEN is set).",
                "security": [{"metricsToken": []}],
                "responses": _answers(
                    {
                        "200": {
                            "description": "Prometheus' text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                    401,
                    404,
                ),
            }
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once per process)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Wattfare API",
            "version": __version__,
            "summary": "OAuth for AI spend: an OpenAI-compatible proxy that charges each app's end user, capped.",
            "description": (
                "Money on the wire is a JSON number of US dollars (exact to the nano-dollar). Every refusal is the "
                'error envelope `{"error": {code, message, type, param}}`; a 402 carries `x-should-retry: false`.'
            ),
        },
        "servers": [{"url": "/"}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "securitySchemes": {
                "secretKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "sk_test_… / sk_live_…",
                    "description": "The app's secret key: server to server only, never in a browser.",
                },
                "sessionToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT (HS256, 10 minutes)",
                    "description": "A session token from `POST /sessions`, for one app user.",
                },
                "publishableKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Wattfare-Publishable-Key",
                    "description": "The app's publishable key (pk_…): required with a session token from a browser.",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's WATTFARE_METRICS_TOKEN.",
                },
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    """`GET /api/v1/openapi.json`: this document (public: it holds no secret, and clients generate code from it)."""
    return json_response(openapi_document())

"""The operations of Wattfare's OpenAPI document: every route of `/api/v1`, and the operator's probes.

Each operation names its parameters, its bodies (`openapi_schemas`), how its caller authenticates (the security
schemes are `openapi`'s) and every status it answers, refusals included (`openapi_errors`). The webhook endpoints'
operations are `openapi_webhook_paths`'s; the parts all operations are written with, `openapi_path_parts`'.
"""

from __future__ import annotations

from typing import Final

from wattfare.server.api.openapi_errors import answers
from wattfare.server.api.openapi_path_parts import BY_SECRET_KEY, V1, json_answer, request_body
from wattfare.server.api.openapi_schemas import APP_USER_ID, GRANT_TOKEN, Schema, object_schema, ref
from wattfare.server.api.openapi_webhook_paths import webhook_paths

_HEADER_TEXT: Final[Schema] = {"schema": {"type": "string"}}
_COST_HEADERS: Final[dict[str, Schema]] = {
    "Wattfare-Request-Id": {**_HEADER_TEXT, "description": "The request's id (also on refusals)."},
    "Wattfare-Cost-Usd": {**_HEADER_TEXT, "description": "What was charged (whole answers)."},
    "Wattfare-Remaining-Usd": {**_HEADER_TEXT, "description": "What the budget (or grant) can still spend."},
    "Wattfare-Max-Tokens": {**_HEADER_TEXT, "description": "The `max_tokens` sent upstream."},
    "Wattfare-Clamped": {**_HEADER_TEXT, "description": "`true` when the budget (or grant) lowered `max_tokens`."},
}
_END_USER: Final[Schema] = {
    "name": "Wattfare-User",
    "in": "header",
    "required": False,
    "description": "The end user (the app's id for them); when absent, the body's `user` names them. Not with "
    "`Wattfare-Grant`.",
    "schema": APP_USER_ID,
}
_GRANT_TEXT: Final = (
    "A one-time grant's token: the request is paid from the grant and counts against it, instead of an end "
    "user's connection."
)
_GRANT: Final[Schema] = {"name": "Wattfare-Grant", "in": "header", "schema": GRANT_TOKEN}
_GRANT_INSTEAD: Final[Schema] = {
    **_GRANT,
    "required": False,
    "description": f"{_GRANT_TEXT} Instead of `Wattfare-User`.",
}
# When a request counts against a grant: `wattfare.server.billing.grants` decides it; this says it on the wire.
_GRANT_COUNTING: Final = (
    "A request counts against a grant's requests from the moment it is admitted (its hold is taken and it is "
    "counted in one write, so requests sent at once never admit more than the grant allows). A request whose hold "
    "is released because nothing reached a model (the provider refused or could not be reached before answering, "
    "or the caller left first) is given back. A request refused before its admission (a malformed body, an unknown "
    "model, an invalid grant) never counts."
)
_PAYER: Final = (
    "Who pays: an end user's connection (`Wattfare-User`, or the body's `user`), or a one-time grant "
    "(`Wattfare-Grant`; the body's `user` then names nobody). Both headers: 400 `invalid_request` (param "
    "`Wattfare-Grant`). A grant that is unknown, another app's or mode's, expired, used up, revoked or over its "
    "dollar cap: 402 `grant_invalid` (`x-should-retry: false`; in a stream, an error event with that code). "
    + _GRANT_COUNTING
    + " A grant's dollar cap clamps `max_tokens` like a connection's cap (a stream then ends with `finish_reason` "
    "`length`), and its spend never exceeds `maxUsd`, however many requests run at once."
)
_SESSION: Final[list[dict[str, list[str]]]] = [{"sessionToken": []}, {"sessionToken": [], "publishableKey": []}]
_METERED_ERRORS: Final = (400, 401, 402, 404, 413, 422, 429, 500, 502, 503, 504)


def _grant_paths() -> dict[str, Schema]:
    return {
        f"{V1}/grants": {
            "post": {
                "operationId": "createGrant",
                "summary": "Mint a one-time grant at once: N requests, at most `maxUsd` (test keys only).",
                "description": (
                    "Test mode only: a test key's grant needs no member (like a test connection). A live key is "
                    "refused (400): a live grant is made only by a member approving it in Wattfare's popup "
                    "(`requestGrant()` of wattfare.js). The caller is the app's server with its secret key "
                    "(`Authorization: Bearer sk_test_…`), or its page with `Wattfare-Publishable-Key: pk_test_…` "
                    "from an `Origin` the app registered (CORS as for `/connections`; another origin: 403). At most "
                    "120 grants a minute per app (429). The answer holds the grant's token this once: send it as "
                    "`Wattfare-Grant` on `/chat/completions` and `/embeddings` (with the secret key). "
                    + _GRANT_COUNTING
                ),
                "security": [{"secretKey": []}, {"publishableKey": []}],
                "requestBody": request_body("GrantRequest"),
                "responses": answers(
                    {"201": json_answer("MintedGrant", "The grant and its token.")}, 400, 401, 403, 413, 429, 500, 503
                ),
            }
        },
        f"{V1}/grants/current": {
            "get": {
                "operationId": "getGrant",
                "summary": "The grant that `Wattfare-Grant` names: its state and what is left of it.",
                "description": (
                    "`requestsUsed` counts the requests in flight too, and `reservedUsd` holds their worst case. "
                    + _GRANT_COUNTING
                    + " A token that is not a grant of the calling app in the key's mode: 402 `grant_invalid`."
                ),
                "security": BY_SECRET_KEY,
                "parameters": [{**_GRANT, "required": True, "description": _GRANT_TEXT}],
                "responses": answers(
                    {"200": json_answer("GrantStatus", "The grant.")},
                    400,
                    401,
                    500,
                    503,
                    only={402: ("grant_invalid",)},
                ),
            }
        },
    }


def api_paths() -> dict[str, Schema]:
    """The document's `paths`: every operation of the HTTP API."""
    return {
        f"{V1}/chat/completions": {
            "post": {
                "operationId": "createChatCompletion",
                "summary": "A chat completion, metered against the end user's budget or a grant (OpenAI's wire).",
                "description": _PAYER,
                "security": BY_SECRET_KEY,
                "parameters": [_END_USER, _GRANT_INSTEAD],
                "requestBody": request_body("ChatCompletionRequest"),
                "responses": answers(
                    {
                        "200": {
                            "description": "The provider's answer with Wattfare's cost, or its stream.",
                            "headers": _COST_HEADERS,
                            "content": {
                                "application/json": {"schema": ref("ChatCompletion")},
                                "text/event-stream": {"schema": ref("ChatCompletionEvent")},
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
                "description": _PAYER,
                "security": BY_SECRET_KEY,
                "parameters": [_END_USER, _GRANT_INSTEAD],
                "requestBody": request_body("EmbeddingRequest"),
                "responses": answers(
                    {"200": json_answer("Embeddings", "The provider's vectors with Wattfare's cost.", _COST_HEADERS)},
                    *_METERED_ERRORS,
                ),
            }
        },
        **_grant_paths(),
        f"{V1}/models": {
            "get": {
                "operationId": "listModels",
                "summary": "Every model Wattfare can meter in the key's mode, with its prices.",
                "security": BY_SECRET_KEY,
                "responses": answers({"200": json_answer("ModelList", "The models.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Mint a 10-minute session token for one app user (the consent popup's).",
                "security": BY_SECRET_KEY,
                "requestBody": request_body("SessionRequest"),
                "responses": answers({"200": json_answer("Session", "The token.")}, 400, 401, 413, 429, 500, 503),
            }
        },
        f"{V1}/status": {
            "get": {
                "operationId": "getStatus",
                "summary": "An app user's connection and budget (never an error for an unknown user).",
                "security": BY_SECRET_KEY,
                "parameters": [{"name": "appUserId", "in": "query", "required": True, "schema": APP_USER_ID}],
                "responses": answers({"200": json_answer("ConnectionStatus", "The status.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/connections": {
            "get": {
                "operationId": "getConnection",
                "summary": "The browser reads its own connection (session token).",
                "security": _SESSION,
                "responses": answers({"200": json_answer("ConnectionStatus", "The status.")}, 400, 401, 403, 500, 503),
            },
            "post": {
                "operationId": "approveConnection",
                "summary": "Approve the connection or change its cap (test mode; live is the member's popup).",
                "security": _SESSION,
                "requestBody": request_body("ApproveConnection", required=False),
                "responses": answers(
                    {"200": json_answer("ConnectionStatus", "The status after approval.")},
                    400,
                    401,
                    402,
                    403,
                    413,
                    500,
                    503,
                ),
            },
            "delete": {
                "operationId": "revokeConnection",
                "summary": "The browser disconnects its own user (spending stops at once).",
                "security": _SESSION,
                "responses": answers({"204": {"description": "Revoked."}}, 400, 401, 403, 500, 503),
            },
        },
        f"{V1}/connections/{{appUserId}}": {
            "delete": {
                "operationId": "disconnectUser",
                "summary": "The app disconnects its user (spending stops at once).",
                "security": BY_SECRET_KEY,
                "parameters": [{"name": "appUserId", "in": "path", "required": True, "schema": APP_USER_ID}],
                "responses": answers({"204": {"description": "Disconnected (or was not)."}}, 400, 401, 500, 503),
            }
        },
        f"{V1}/usage": {
            "get": {
                "operationId": "getUsage",
                "summary": "Spend per app user, model and endpoint over a range of days (default: this month).",
                "description": (
                    "Months the operator archived with `wattfare ledger archive --by month` are kept by month: a "
                    "range starting or ending inside one is refused (400 `invalid_request`, `param` `from` or `to`)."
                ),
                "security": BY_SECRET_KEY,
                "parameters": [
                    {"name": "appUserId", "in": "query", "required": False, "schema": APP_USER_ID},
                    {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "App users per page of the whole app's report (default 100).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "The previous page's `nextAfter`: the page of the app users after it.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
                    },
                ],
                "responses": answers({"200": json_answer("Usage", "The spend.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/app": {
            "get": {
                "operationId": "getApp",
                "summary": "The calling app's id, name and settings.",
                "security": BY_SECRET_KEY,
                "responses": answers({"200": json_answer("App", "The app.")}, 400, 401, 500, 503),
            },
            "patch": {
                "operationId": "updateApp",
                "summary": "Change the app's settings (`outputAllowanceTokens`).",
                "security": BY_SECRET_KEY,
                "requestBody": request_body("AppSettings"),
                "responses": answers({"200": json_answer("App", "The app after the change.")}, 400, 401, 413, 500, 503),
            },
        },
        **webhook_paths(),
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
                        "content": {"application/json": {"schema": object_schema({"ok": {"const": True}}, ("ok",))}},
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the store answers and every price list is fresh.",
                "security": [],
                "responses": answers({"200": json_answer("Ready", "Ready to meter.")}, 503),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (exists only when WATTFARE_METRICS_TOKEN is set).",
                "security": [{"metricsToken": []}],
                "responses": answers(
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

"""The operations of Wattfare's OpenAPI document: every route of `/api/v1`, and the operator's probes.

Each operation names its parameters, its bodies (`openapi_schemas`), how its caller authenticates (the security
schemes are `openapi`'s) and every status it answers, refusals included (`openapi_errors`).
"""

from __future__ import annotations

from typing import Final

from wattfare.server.api.openapi_errors import answers
from wattfare.server.api.openapi_schemas import APP_USER_ID, GRANT_TOKEN, Schema, object_schema, ref

V1: Final = "/api/v1"


def _json(schema_name: str, description: str, headers: dict[str, Schema] | None = None) -> Schema:
    answer: Schema = {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}
    if headers:
        answer["headers"] = headers
    return answer


def _body(schema_name: str, *, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": ref(schema_name)}}}


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
_SECRET: Final[list[dict[str, list[str]]]] = [{"secretKey": []}]
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
                "requestBody": _body("GrantRequest"),
                "responses": answers(
                    {"201": _json("MintedGrant", "The grant and its token.")}, 400, 401, 403, 413, 429, 500, 503
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
                "security": _SECRET,
                "parameters": [{**_GRANT, "required": True, "description": _GRANT_TEXT}],
                "responses": answers(
                    {"200": _json("GrantStatus", "The grant.")}, 400, 401, 500, 503, only={402: ("grant_invalid",)}
                ),
            }
        },
    }


_ENDPOINT_ID: Final[Schema] = {
    "name": "endpointId",
    "in": "path",
    "required": True,
    "description": "The endpoint's id (`we_…`).",
    "schema": {"type": "string", "minLength": 1},
}
_NO_ENDPOINT: Final = {404: ("invalid_request",)}
_ROTATION: Final = (
    "The old secret keeps signing for 24 hours beside the new one (`webhook-signature` then carries both), so the "
    "receiver can deploy the new one meanwhile."
)


def _webhook_paths() -> dict[str, Schema]:
    """The app's webhook endpoints (secret key; the key's mode is theirs: another mode's or app's endpoint is 404)."""
    endpoints = f"{V1}/webhooks/endpoints"
    one = f"{endpoints}/{{endpointId}}"
    return {
        endpoints: {
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "The app's webhook endpoints in the key's mode, oldest first.",
                "security": _SECRET,
                "responses": answers({"200": _json("WebhookEndpointList", "The endpoints.")}, 400, 401, 500, 503),
            },
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "Register an endpoint for the app's events in the key's mode; its secret is shown once.",
                "description": (
                    "Deliveries are Standard Webhooks POSTs of the events made from now on, signed with the answer's "
                    "`secret`. At most 16 endpoints per app and mode. Unknown fields are refused by name (400)."
                ),
                "security": _SECRET,
                "requestBody": _body("NewWebhookEndpoint"),
                "responses": answers(
                    {"201": _json("WebhookEndpointWithSecret", "The endpoint, and its secret (this once).")},
                    400,
                    401,
                    413,
                    500,
                    503,
                ),
            },
        },
        one: {
            "get": {
                "operationId": "getWebhookEndpoint",
                "summary": "One webhook endpoint (never its secret).",
                "security": _SECRET,
                "parameters": [_ENDPOINT_ID],
                "responses": answers(
                    {"200": _json("WebhookEndpoint", "The endpoint.")}, 400, 401, 500, 503, only=_NO_ENDPOINT
                ),
            },
            "patch": {
                "operationId": "updateWebhookEndpoint",
                "summary": "Change an endpoint's URL or description, or disable (`enabled: false`) and enable it.",
                "description": (
                    "A disabled endpoint is sent nothing, and the events made meanwhile are not kept for it. Any "
                    "change to a `failing` endpoint makes it `enabled` again. Unknown fields are refused by name (400)."
                ),
                "security": _SECRET,
                "parameters": [_ENDPOINT_ID],
                "requestBody": _body("WebhookEndpointChange"),
                "responses": answers(
                    {"200": _json("WebhookEndpoint", "The endpoint after the change.")},
                    400,
                    401,
                    413,
                    500,
                    503,
                    only=_NO_ENDPOINT,
                ),
            },
            "delete": {
                "operationId": "deleteWebhookEndpoint",
                "summary": "Stop delivering to an endpoint, for good.",
                "security": _SECRET,
                "parameters": [_ENDPOINT_ID],
                "responses": answers({"204": {"description": "Deleted."}}, 400, 401, 500, 503, only=_NO_ENDPOINT),
            },
        },
        f"{one}/rotate-secret": {
            "post": {
                "operationId": "rotateWebhookSecret",
                "summary": "Give an endpoint a new signing secret, shown this once.",
                "description": _ROTATION,
                "security": _SECRET,
                "parameters": [_ENDPOINT_ID],
                "responses": answers(
                    {"200": _json("WebhookEndpointWithSecret", "The endpoint, and its new secret (this once).")},
                    400,
                    401,
                    500,
                    503,
                    only=_NO_ENDPOINT,
                ),
            }
        },
        f"{one}/deliveries": {
            "get": {
                "operationId": "listWebhookDeliveries",
                "summary": "An endpoint's deliveries, newest event first: their state, attempts and last answer.",
                "security": _SECRET,
                "parameters": [
                    _ENDPOINT_ID,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "How many (default 20).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ],
                "responses": answers(
                    {"200": _json("WebhookDeliveryList", "The deliveries.")}, 400, 401, 500, 503, only=_NO_ENDPOINT
                ),
            }
        },
        f"{one}/deliveries/{{eventId}}/resend": {
            "post": {
                "operationId": "resendWebhookDelivery",
                "summary": "Send one event to the endpoint again, now (delivered or failed; same `webhook-id`).",
                "security": _SECRET,
                "parameters": [
                    _ENDPOINT_ID,
                    {
                        "name": "eventId",
                        "in": "path",
                        "required": True,
                        "description": "The event's id (`msg_…`).",
                        "schema": {"type": "string", "minLength": 1},
                    },
                ],
                "responses": answers(
                    {"202": _json("WebhookResent", "Queued: the delivery loop sends it within seconds.")},
                    400,
                    401,
                    500,
                    503,
                    only=_NO_ENDPOINT,
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
                "security": _SECRET,
                "parameters": [_END_USER, _GRANT_INSTEAD],
                "requestBody": _body("ChatCompletionRequest"),
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
                "security": _SECRET,
                "parameters": [_END_USER, _GRANT_INSTEAD],
                "requestBody": _body("EmbeddingRequest"),
                "responses": answers(
                    {"200": _json("Embeddings", "The provider's vectors with Wattfare's cost.", _COST_HEADERS)},
                    *_METERED_ERRORS,
                ),
            }
        },
        **_grant_paths(),
        f"{V1}/models": {
            "get": {
                "operationId": "listModels",
                "summary": "Every model Wattfare can meter in the key's mode, with its prices.",
                "security": _SECRET,
                "responses": answers({"200": _json("ModelList", "The models.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Mint a 10-minute session token for one app user (the consent popup's).",
                "security": _SECRET,
                "requestBody": _body("SessionRequest"),
                "responses": answers({"200": _json("Session", "The token.")}, 400, 401, 413, 429, 500, 503),
            }
        },
        f"{V1}/status": {
            "get": {
                "operationId": "getStatus",
                "summary": "An app user's connection and budget (never an error for an unknown user).",
                "security": _SECRET,
                "parameters": [{"name": "appUserId", "in": "query", "required": True, "schema": APP_USER_ID}],
                "responses": answers({"200": _json("ConnectionStatus", "The status.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/connections": {
            "get": {
                "operationId": "getConnection",
                "summary": "The browser reads its own connection (session token).",
                "security": _SESSION,
                "responses": answers({"200": _json("ConnectionStatus", "The status.")}, 400, 401, 403, 500, 503),
            },
            "post": {
                "operationId": "approveConnection",
                "summary": "Approve the connection or change its cap (test mode; live is the member's popup).",
                "security": _SESSION,
                "requestBody": _body("ApproveConnection", required=False),
                "responses": answers(
                    {"200": _json("ConnectionStatus", "The status after approval.")}, 400, 401, 402, 403, 413, 500, 503
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
                "security": _SECRET,
                "parameters": [{"name": "appUserId", "in": "path", "required": True, "schema": APP_USER_ID}],
                "responses": answers({"204": {"description": "Disconnected (or was not)."}}, 400, 401, 500, 503),
            }
        },
        f"{V1}/usage": {
            "get": {
                "operationId": "getUsage",
                "summary": "Spend per app user, model and endpoint over a range of days (default: this month).",
                "security": _SECRET,
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
                "responses": answers({"200": _json("Usage", "The spend.")}, 400, 401, 500, 503),
            }
        },
        f"{V1}/app": {
            "get": {
                "operationId": "getApp",
                "summary": "The calling app's id, name and settings.",
                "security": _SECRET,
                "responses": answers({"200": _json("App", "The app.")}, 400, 401, 500, 503),
            },
            "patch": {
                "operationId": "updateApp",
                "summary": "Change the app's settings (`outputAllowanceTokens`).",
                "security": _SECRET,
                "requestBody": _body("AppSettings"),
                "responses": answers({"200": _json("App", "The app after the change.")}, 400, 401, 413, 500, 503),
            },
        },
        **_webhook_paths(),
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
                "responses": answers({"200": _json("Ready", "Ready to meter.")}, 503),
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

"""The operations of the app's webhook endpoints in Wattfare's OpenAPI document (`/api/v1/webhooks/endpoints`).

Assembled into the document's `paths` by `openapi_paths`.
"""

from __future__ import annotations

from typing import Final

from wattfare.server.api.openapi_errors import answers
from wattfare.server.api.openapi_path_parts import BY_SECRET_KEY, V1, json_answer, request_body
from wattfare.server.api.openapi_schemas import Schema

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


def webhook_paths() -> dict[str, Schema]:
    """The app's webhook endpoints (secret key; the key's mode is theirs: another mode's or app's endpoint is 404)."""
    endpoints = f"{V1}/webhooks/endpoints"
    one = f"{endpoints}/{{endpointId}}"
    return {
        endpoints: {
            "get": {
                "operationId": "listWebhookEndpoints",
                "summary": "The app's webhook endpoints in the key's mode, oldest first.",
                "security": BY_SECRET_KEY,
                "responses": answers({"200": json_answer("WebhookEndpointList", "The endpoints.")}, 400, 401, 500, 503),
            },
            "post": {
                "operationId": "createWebhookEndpoint",
                "summary": "Register an endpoint for the app's events in the key's mode; its secret is shown once.",
                "description": (
                    "Deliveries are Standard Webhooks POSTs of the events made from now on, signed with the answer's "
                    "`secret`. At most 16 endpoints per app and mode. Unknown fields are refused by name (400)."
                ),
                "security": BY_SECRET_KEY,
                "requestBody": request_body("NewWebhookEndpoint"),
                "responses": answers(
                    {"201": json_answer("WebhookEndpointWithSecret", "The endpoint, and its secret (this once).")},
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
                "security": BY_SECRET_KEY,
                "parameters": [_ENDPOINT_ID],
                "responses": answers(
                    {"200": json_answer("WebhookEndpoint", "The endpoint.")}, 400, 401, 500, 503, only=_NO_ENDPOINT
                ),
            },
            "patch": {
                "operationId": "updateWebhookEndpoint",
                "summary": "Change an endpoint's URL or description, or disable (`enabled: false`) and enable it.",
                "description": (
                    "A disabled endpoint is sent nothing, and the events made meanwhile are not kept for it. Any "
                    "change to a `failing` endpoint makes it `enabled` again. Unknown fields are refused by name (400)."
                ),
                "security": BY_SECRET_KEY,
                "parameters": [_ENDPOINT_ID],
                "requestBody": request_body("WebhookEndpointChange"),
                "responses": answers(
                    {"200": json_answer("WebhookEndpoint", "The endpoint after the change.")},
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
                "security": BY_SECRET_KEY,
                "parameters": [_ENDPOINT_ID],
                "responses": answers({"204": {"description": "Deleted."}}, 400, 401, 500, 503, only=_NO_ENDPOINT),
            },
        },
        f"{one}/rotate-secret": {
            "post": {
                "operationId": "rotateWebhookSecret",
                "summary": "Give an endpoint a new signing secret, shown this once.",
                "description": _ROTATION,
                "security": BY_SECRET_KEY,
                "parameters": [_ENDPOINT_ID],
                "responses": answers(
                    {"200": json_answer("WebhookEndpointWithSecret", "The endpoint, and its new secret (this once).")},
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
                "security": BY_SECRET_KEY,
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
                    {"200": json_answer("WebhookDeliveryList", "The deliveries.")},
                    400,
                    401,
                    500,
                    503,
                    only=_NO_ENDPOINT,
                ),
            }
        },
        f"{one}/deliveries/{{eventId}}/resend": {
            "post": {
                "operationId": "resendWebhookDelivery",
                "summary": "Send one event to the endpoint again, now (delivered or failed; same `webhook-id`).",
                "security": BY_SECRET_KEY,
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
                    {"202": json_answer("WebhookResent", "Queued: the delivery loop sends it within seconds.")},
                    400,
                    401,
                    500,
                    503,
                    only=_NO_ENDPOINT,
                ),
            }
        },
    }

"""Wattfare's own bodies in its OpenAPI document, and the JSON Schema vocabulary every part of it is written in.

The bodies of Wattfare's own endpoints (sessions, connections, grants, usage, the app, webhook endpoints, readiness)
list every field they carry, and most are closed. OpenAI's wire (the metered endpoints' bodies) is `openapi_wire`'s;
the error envelope is `openapi_errors`'.
"""

from __future__ import annotations

from typing import Any, Final

from wattfare.metering import MAX_CAP_USD
from wattfare.server.billing.grants import MAX_GRANT_LIFETIME, MAX_GRANT_REQUESTS, MIN_GRANT_LIFETIME
from wattfare.server.webhooks.endpoints import MAX_DESCRIPTION_LENGTH, MAX_URL_LENGTH

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema`, or JSON `null`."""
    return {"anyOf": [schema, {"type": "null"}]}


def object_schema(properties: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = False) -> Schema:
    """A JSON object of `properties` (`closed`: no other property allowed, for bodies that are Wattfare's own)."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": not closed}
    if required:
        schema["required"] = list(required)
    return schema


USD: Final[Schema] = {"type": "number", "minimum": 0, "description": "US dollars (exact to the nano-dollar)."}
"""An amount of money on the wire: a JSON number of US dollars."""
APP_USER_ID: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "description": "The app's own id for its user (printable text; ids beginning with `grant:` are Wattfare's own).",
}
"""An app's id for one of its users."""
GRANT_TOKEN: Final[Schema] = {
    "type": "string",
    "pattern": "^wfg_[A-Za-z0-9_-]{43}$",
    "description": "A one-time grant's token, as `POST /grants` (or the member's approval) answered it.",
}
"""A one-time grant's token (`wfg_` and 43 URL-safe base64 characters)."""
COUNT: Final[Schema] = {"type": "integer", "minimum": 0}
"""A count (of tokens, requests, models)."""
_UNIX_SECONDS: Final[Schema] = {"type": "integer", "description": "Unix seconds."}
_INSTANT: Final[Schema] = {"type": "string", "format": "date-time"}


def _grant_schemas() -> dict[str, Schema]:
    max_usd = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_CAP_USD}
    return {
        "GrantRequest": object_schema(
            {
                "requests": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_GRANT_REQUESTS,
                    "description": "How many requests the grant admits.",
                },
                "maxUsd": nullable(
                    {
                        "anyOf": [
                            max_usd,
                            {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "examples": ["0.50"]},
                        ]
                    }
                )
                | {
                    "description": (
                        f"At most this many US dollars over the grant's life (a JSON number or a decimal string; more "
                        f"than 0 and at most {MAX_CAP_USD:,}). Absent or null: no dollar cap of its own (the "
                        "member's funding and each request's `max_tokens` still bound it)."
                    )
                },
                "expiresInSeconds": nullable(
                    {
                        "type": "integer",
                        "minimum": int(MIN_GRANT_LIFETIME.total_seconds()),
                        "maximum": int(MAX_GRANT_LIFETIME.total_seconds()),
                    }
                )
                | {"description": "How long the grant lives (absent or null: 3,600 seconds, one hour)."},
            },
            ("requests",),
        ),
        "MintedGrant": object_schema(
            {
                "grantToken": {
                    **GRANT_TOKEN,
                    "description": "The grant's token, shown this once (Wattfare keeps only its hash): send it as "
                    "`Wattfare-Grant`.",
                },
                "grantId": {"type": "string", "description": "The grant's public id (`gr_…`), safe to show."},
                "expiresAt": _UNIX_SECONDS,
                "requests": {"type": "integer", "minimum": 1, "description": "How many requests it admits."},
                "maxUsd": nullable(USD) | {"description": "Its dollar cap (null: none of its own)."},
            },
            ("grantToken", "grantId", "expiresAt", "requests", "maxUsd"),
            closed=True,
        ),
        "GrantStatus": object_schema(
            {
                "grantId": {"type": "string"},
                "state": {
                    "enum": ["active", "used_up", "expired", "revoked"],
                    "description": "Only an `active` grant admits a request; `used_up`: every request counted, or "
                    "its dollar cap spent.",
                },
                "requestsAllowed": {"type": "integer", "minimum": 1},
                "requestsUsed": {**COUNT, "description": "Counted requests, those in flight included."},
                "requestsLeft": COUNT,
                "maxUsd": nullable(USD),
                "spentUsd": USD,
                "reservedUsd": {**USD, "description": "Held for requests in flight."},
                "expiresAt": _UNIX_SECONDS,
            },
            (
                "grantId",
                "state",
                "requestsAllowed",
                "requestsUsed",
                "requestsLeft",
                "maxUsd",
                "spentUsd",
                "reservedUsd",
                "expiresAt",
            ),
            closed=True,
        ),
    }


def _webhook_schemas() -> dict[str, Schema]:
    url = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_URL_LENGTH,
        "pattern": "^https?://",
        "description": "Where Wattfare posts the events: an absolute http:// or https:// URL without credentials, in "
        "printable characters (live mode: https:// only).",
    }
    description = nullable({"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH}) | {
        "description": f"A note for the app's developers, on one line (at most {MAX_DESCRIPTION_LENGTH} characters; "
        "null or empty: none)."
    }
    endpoint = {
        "id": {"type": "string", "description": "The endpoint's id (`we_…`)."},
        "url": {"type": "string"},
        "description": {"type": "string"},
        "mode": {"enum": ["test", "live"], "description": "The mode of the events it receives (its key's)."},
        "state": {
            "enum": ["enabled", "failing", "disabled"],
            "description": "`failing`: an event was given up on after its last retry (deliveries go on; the next "
            "success makes it `enabled`); `disabled`: it receives nothing (`PATCH` it with `enabled: true`).",
        },
        "failingSince": nullable(_INSTANT),
        "createdAt": _INSTANT,
    }
    secret = {
        "type": "string",
        "pattern": "^whsec_[A-Za-z0-9+/=]+$",
        "description": "The signing secret (Standard Webhooks), in this answer only: verify each delivery with it.",
    }
    delivery = {
        "eventId": {"type": "string", "description": "The event's id (`msg_…`), its `webhook-id` on every attempt."},
        "type": {"type": "string", "description": "The event's type, such as `connection.approved`."},
        "createdAt": _INSTANT,
        "state": {"enum": ["pending", "delivered", "failed"], "description": "`failed`: every retry was refused."},
        "attempts": COUNT,
        "nextAttemptAt": _INSTANT,
        "lastAttemptAt": nullable(_INSTANT),
        "lastStatus": nullable({"type": "integer", "description": "The HTTP status the endpoint answered last."}),
        "lastError": nullable({"type": "string"}),
        "deliveredAt": nullable(_INSTANT),
    }
    return {
        "NewWebhookEndpoint": object_schema({"url": url, "description": description}, ("url",), closed=True),
        "WebhookEndpointChange": object_schema(
            {
                "url": url,
                "description": description,
                "enabled": {"type": "boolean", "description": "false: deliver nothing to it until it is true again."},
            },
            closed=True,
        ),
        "WebhookEndpoint": object_schema(endpoint, tuple(endpoint), closed=True),
        "WebhookEndpointWithSecret": object_schema({**endpoint, "secret": secret}, (*endpoint, "secret"), closed=True),
        "WebhookEndpointList": object_schema(
            {"data": {"type": "array", "items": ref("WebhookEndpoint")}}, ("data",), closed=True
        ),
        "WebhookDeliveryList": object_schema(
            {"data": {"type": "array", "items": object_schema(delivery, tuple(delivery), closed=True)}},
            ("data",),
            closed=True,
        ),
        "WebhookResent": object_schema({"resent": {"const": True}}, ("resent",), closed=True),
    }


def component_schemas() -> dict[str, Schema]:
    """The bodies of Wattfare's own endpoints (sessions, connections, grants, usage, the app, webhooks, readiness)."""
    return {
        "SessionRequest": object_schema(
            {
                "appUserId": APP_USER_ID,
                "requestLimit": object_schema(
                    {"monthlyUsd": {"type": "number", "exclusiveMinimum": 0}}, ("monthlyUsd",)
                ),
            },
            ("appUserId",),
        ),
        "Session": object_schema(
            {
                "token": {"type": "string", "description": "A session token: 10 minutes, one app user."},
                "expiresAt": {"type": "integer", "description": "Unix seconds."},
                "connectUrl": {"type": "string", "format": "uri", "description": "Open it in the consent popup."},
            },
            ("token", "expiresAt", "connectUrl"),
            closed=True,
        ),
        "ConnectionStatus": object_schema(
            {
                "connected": {"type": "boolean"},
                "state": nullable({"enum": ["active", "revoked"]}),
                "appUserId": {"type": "string"},
                "limits": object_schema({"monthlyUsd": nullable(USD)}, ("monthlyUsd",), closed=True),
                "spentUsd": USD,
                "reservedUsd": USD,
                "remainingUsd": nullable(USD),
                "resetsAt": {"type": "string", "format": "date-time"},
            },
            ("connected", "state", "appUserId", "limits", "spentUsd", "remainingUsd", "resetsAt"),
            closed=True,
        ),
        "ApproveConnection": object_schema({"monthlyUsd": {"type": "number", "exclusiveMinimum": 0}}),
        "Usage": object_schema(
            {
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "array",
                    "items": object_schema(
                        {
                            "appUserId": {"type": "string"},
                            "model": {"type": "string"},
                            "endpoint": {"enum": ["chat.completions", "embeddings"]},
                            "requests": COUNT,
                            "promptTokens": COUNT,
                            "completionTokens": COUNT,
                            "costUsd": USD,
                        },
                        ("appUserId", "model", "endpoint", "requests", "promptTokens", "completionTokens", "costUsd"),
                        closed=True,
                    ),
                },
                "hasMore": {"type": "boolean"},
                "nextAfter": nullable({"type": "string"}),
            },
            ("from", "to", "data", "hasMore", "nextAfter"),
            closed=True,
        ),
        "App": object_schema(
            {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "mode": {"enum": ["test", "live"]},
                "outputAllowanceTokens": nullable({"type": "integer"}),
                "defaultOutputAllowanceTokens": object_schema(
                    {"chat": {"type": "integer"}, "reasoning": {"type": "integer"}}, ("chat", "reasoning")
                ),
            },
            ("id", "name", "mode", "outputAllowanceTokens", "defaultOutputAllowanceTokens"),
            closed=True,
        ),
        "AppSettings": object_schema(
            {"outputAllowanceTokens": nullable({"type": "integer", "minimum": 1})},
            closed=True,
        ),
        "Ready": object_schema(
            {
                "status": {"const": "ready"},
                "store": {"const": "ok"},
                "prices": {
                    "type": "object",
                    "additionalProperties": object_schema(
                        {
                            "source": {"type": "string"},
                            "models": COUNT,
                            "ageSeconds": {"type": "number", "minimum": 0},
                            "ok": {"type": "boolean"},
                        },
                        ("source", "models", "ageSeconds", "ok"),
                    ),
                },
            },
            ("status", "store", "prices"),
        ),
        **_grant_schemas(),
        **_webhook_schemas(),
    }

"""The OpenAPI 3.1 document of Wattfare's HTTP API, served at `GET /api/v1/openapi.json`.

Written as Python data, once: every route of `/api/v1` (and the operator's `/healthz`, `/readyz`, `/metrics`),
its parameters, request and response bodies (the completion's `text/event-stream` included), the ways a caller
authenticates, and the error envelope with every code. This module assembles it from its parts, one concept each:

- `openapi_paths`: the operations (one-time grants and the `Wattfare-Grant` header included);
- `openapi_wire`: OpenAI's wire, the bodies of the metered endpoints and the model list;
- `openapi_schemas`: Wattfare's own bodies, and the JSON Schema vocabulary all parts are written in;
- `openapi_errors`: the error envelope, and the codes each status carries (from `wattfare._error_codes`).

tests/server/api/test_openapi.py validates the document and real answers against it, and schemathesis fuzzes a
running server from it (tests/server/api/test_schemathesis.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from wattfare._version import __version__
from wattfare.server.api.json_body import json_response
from wattfare.server.api.openapi_errors import codes_by_status, error_responses, error_schemas
from wattfare.server.api.openapi_paths import api_paths
from wattfare.server.api.openapi_schemas import Schema, component_schemas
from wattfare.server.api.openapi_wire import wire_schemas

__all__ = ["codes_by_status", "openapi_document", "openapi_json"]

_SECURITY_SCHEMES: Final[dict[str, Schema]] = {
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
        "description": (
            "The app's publishable key (pk_…), from a page at an `Origin` the app registered: with a session token "
            "(`/connections`), or alone to mint a test grant (`POST /grants`, pk_test_… only)."
        ),
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator's WATTFARE_METRICS_TOKEN.",
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
                "A metered request is paid by an end user's connection (`Wattfare-User`) or by a one-time grant "
                "(`Wattfare-Grant`). Money on the wire is a JSON number of US dollars (exact to the nano-dollar). "
                'Every refusal is the error envelope `{"error": {code, message, type, param}}`; a 402 carries '
                "`x-should-retry: false`."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": api_paths(),
        "components": {
            "schemas": {**error_schemas(), **wire_schemas(), **component_schemas()},
            "responses": error_responses(),
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


async def openapi_json(request: Request) -> Response:
    """`GET /api/v1/openapi.json`: this document (public: it holds no secret, and clients generate code from it)."""
    return json_response(openapi_document())

"""CORS for the browser's endpoint (`/api/v1/connections` with a session token): registered origins only.

A browser request carries `Origin`. When no app registered that origin, a preflight gets no CORS headers and
an actual request is refused before any handler runs (so even a request the browser sends without preflight
changes nothing). A registered origin gets `Access-Control-Allow-Origin` echoed back; the handler then checks
the finer rule, that the origin belongs to the very app of the session token and publishable key, and
refuses otherwise. Requests without `Origin` (servers) pass through untouched.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from wattfare.server.errors import ApiError
from wattfare.server.services import Services

BROWSER_PATHS = frozenset({"/api/v1/connections", "/api/v1/grants"})
_ALLOWED_METHODS = "GET, POST, DELETE"
_ALLOWED_HEADERS = "authorization, content-type, wattfare-publishable-key"
_PREFLIGHT_MAX_AGE = "600"


class BrowserCors:
    """ASGI middleware answering CORS for `BROWSER_PATHS` from the apps' registered origins."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        """Wrap `app`; origins are read from `services.store`."""
        self._app = app
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request."""
        if scope["type"] != "http" or scope["path"] not in BROWSER_PATHS:
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self._app(scope, receive, send)
            return
        # An origin is printable ASCII (RFC 6454 serialises it so); anything else is no app's, and must not
        # reach the store, where a NUL is a database error rather than a miss.
        registered = origin.isascii() and origin.isprintable() and await self._services.store.origin_registered(origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            response = Response(status_code=204 if registered else 403, headers={"Vary": "Origin"})
            if registered:
                response.headers.update(
                    {
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": _ALLOWED_METHODS,
                        "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
                        "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
                    }
                )
            await response(scope, receive, send)
            return
        if not registered:
            refusal = ApiError("auth", f"Origin {origin} is not allowed: no app registered it.", status=403)
            await refusal.response()(scope, receive, send)
            return

        async def send_with_cors(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin
                response_headers.append("Vary", "Origin")
            await send(message)

        await self._app(scope, receive, send_with_cors)

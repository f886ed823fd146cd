"""The outermost layer of the app: each request gets its record, and once it has ended, its metrics and log line.

Nothing here waits on anything: the record is a context variable's value that the request's own code fills in
(see `request_log`), and the counting and the line happen after the response's last byte, outside the meter's
writes. The endpoint is named by its route template (`/api/v1/connections/{app_user_id:path}`), never by the
path it was called with, which may hold an app's user id; a path no route matches is `unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, MutableMapping
from typing import Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send

from wattfare.server.observability import metrics
from wattfare.server.observability.request_log import RequestRecord, begin, end, log_request

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(scope: Scope, fixed_paths: Collection[str]) -> str:
    """The route template that served the request, or `unmatched` (a bounded label, with no caller's data)."""
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    if isinstance(path, str):
        return path
    return scope["path"] if scope["path"] in fixed_paths else "unmatched"


class ObservedRequests:
    """ASGI middleware: a `RequestRecord` for each HTTP request, then its metrics and its log line."""

    def __init__(self, app: ASGIApp, *, fixed_paths: Collection[str] = ()) -> None:
        """Observe `app`; `fixed_paths` are served ahead of the router (so no route names them in the scope)."""
        self._app = app
        self._fixed = frozenset(fixed_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request through `app`, observed."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        record = RequestRecord(time.perf_counter())
        token = begin(record)
        status = 500  # what the client gets when the app raises before answering

        async def observed(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, observed)
        finally:
            end(token)
            self._ended(scope, record, status)

    def _ended(self, scope: Scope, record: RequestRecord, status: int) -> None:
        seconds = time.perf_counter() - record.started
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = route_of(scope, self._fixed)
        code = record.code or ("ok" if status < 400 else f"{status // 100}xx")
        endpoint = f"{method} {route}"
        metrics.request_done(endpoint, record.mode or "none", code, seconds, record)
        log_request(endpoint, status, code, seconds, record)

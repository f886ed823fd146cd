"""Counting what reaches Wattfare: httpx transports that log each request, then send it for real."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class SentRequest:
    """One request the handler sent to Wattfare."""

    method: str
    host: str
    path: str
    app_user_id: str | None
    model: str | None


class RequestLog:
    """Every request sent through a logging transport, in order (thread-safe: LiteLLM uses threads)."""

    def __init__(self) -> None:
        self._requests: list[SentRequest] = []
        self._lock = threading.Lock()

    def add(self, request: httpx.Request) -> None:
        body = json.loads(request.content) if request.content else {}
        model = body.get("model") if isinstance(body, dict) else None
        sent = SentRequest(
            request.method, request.url.host, request.url.path, request.headers.get("wattfare-user"), model
        )
        with self._lock:
            self._requests.append(sent)

    def completions(self, app_user_id: str | None = None) -> list[SentRequest]:
        """The chat completions sent, for one end user or for all."""
        with self._lock:
            return [
                r
                for r in self._requests
                if r.path.endswith("/chat/completions") and (app_user_id is None or r.app_user_id == app_user_id)
            ]

    def embeddings(self, app_user_id: str | None = None) -> list[SentRequest]:
        """The embeddings requests sent, for one end user or for all."""
        with self._lock:
            return [
                r
                for r in self._requests
                if r.path.endswith("/embeddings") and (app_user_id is None or r.app_user_id == app_user_id)
            ]


class LoggingTransport(httpx.BaseTransport):
    """Logs each request, then sends it over a real connection."""

    def __init__(self, log: RequestLog) -> None:
        self._log = log
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._log.add(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class AsyncLoggingTransport(httpx.AsyncBaseTransport):
    """The async twin of `LoggingTransport`."""

    def __init__(self, log: RequestLog) -> None:
        self._log = log
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._log.add(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

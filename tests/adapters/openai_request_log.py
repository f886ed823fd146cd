"""Counting what reaches Wattfare from an openai client (Pydantic AI, the Agents SDK): an httpx2 transport that logs.

A refusal never reaches a model provider, so "sent once" is counted here, on the client side.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx2


@dataclass(frozen=True, slots=True)
class SentRequest:
    """One request the openai client sent to Wattfare."""

    path: str
    app_user_id: str | None


class RequestLog:
    """Every request sent through a `LoggingTransport`, in order."""

    def __init__(self) -> None:
        self.sent: list[SentRequest] = []

    def completions(self, app_user_id: str | None = None) -> list[SentRequest]:
        """The chat completions sent, for one end user or for all."""
        return [
            r
            for r in self.sent
            if r.path.endswith("/chat/completions") and (app_user_id is None or r.app_user_id == app_user_id)
        ]


class LoggingTransport(httpx2.AsyncBaseTransport):
    """Logs each request, then sends it over a real connection."""

    def __init__(self, log: RequestLog) -> None:
        self._log = log
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._log.sent.append(SentRequest(request.url.path, request.headers.get("wattfare-user")))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

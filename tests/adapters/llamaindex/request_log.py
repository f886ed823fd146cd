"""A log of what really went over the wire to Wattfare, read back in tests against a real server.

It is an httpx event hook on the client the SDK sends through, so requests are untouched: the test
sees exactly what LlamaIndex made WattfareLLM send (the ReAct prompt, the tools, the tool choice).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

CHAT_PATH = "/api/v1/chat/completions"


class RequestLog:
    """Every request sent through its clients, in order."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def client(self) -> httpx.Client:
        """A sync client that logs its requests (the caller closes it)."""
        return httpx.Client(event_hooks={"request": [self.requests.append]})

    def async_client(self) -> httpx.AsyncClient:
        """An async client that logs its requests (the caller closes it)."""

        async def log(request: httpx.Request) -> None:
            self.requests.append(request)

        return httpx.AsyncClient(event_hooks={"request": [log]})

    def chats(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat completions sent."""
        return [json.loads(request.content) for request in self.requests if request.url.path == CHAT_PATH]

"""Helpers to build upstream requests and read answers the way the proxy does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse


def chat_request(payload: Mapping[str, Any], *, api_key: str | None = None) -> UpstreamRequest:
    """An upstream request as the proxy would build it."""
    return UpstreamRequest(
        body=orjson.dumps(payload), payload=payload, stream=payload.get("stream") is True, api_key=api_key
    )


async def read_all(response: UpstreamResponse) -> bytes:
    """The whole answer: the body, or every streamed byte (closing the stream afterwards)."""
    if response.body is not None:
        return response.body
    assert response.chunks is not None
    try:
        return b"".join([chunk async for chunk in response.chunks])
    finally:
        await response.close()


def sse_data(stream: bytes) -> list[bytes]:
    """The `data:` payloads of a server-sent event stream, in order (including `[DONE]`)."""
    events = stream.split(b"\n\n")
    assert events[-1] == b"", "the stream must end with a complete event"
    payloads = []
    for event in events[:-1]:
        assert event.startswith(b"data: "), event
        payloads.append(event.removeprefix(b"data: "))
    return payloads

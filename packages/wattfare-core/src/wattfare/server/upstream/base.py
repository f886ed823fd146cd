"""The upstream seam: what the proxy needs from a model provider, and nothing more.

An upstream takes the rewritten request body and answers with either a whole body or a stream of raw
bytes. The proxy never re-encodes streamed bytes, so the interface hands them over as they arrive.
Embeddings are one more call on the same seam (`embed`, always a whole body), with their own model list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One chat completion (or embedding) request, as the proxy will send it upstream.

    Attributes:
        body: the JSON body to send, already rewritten by the proxy (`max_tokens` clamped, usage requested).
        payload: the same body, parsed; in-process upstreams read this instead of re-parsing `body`.
        stream: whether the client asked for server-sent events.
        api_key: the funding key for this request, or None to use the upstream's own key.
        end_user: an opaque, stable id of the end user that upstreams may use for abuse tracking.
    """

    body: bytes
    payload: Mapping[str, Any]
    stream: bool
    api_key: str | None = None
    end_user: str | None = None


@dataclass(slots=True)
class UpstreamResponse:
    """The upstream's answer: a status, a few headers, and either a body or a byte stream.

    `chunks` is set for a successful streaming answer; `body` otherwise (including every error answer,
    streamed or not). `close` releases the connection and must be awaited exactly once by the proxy.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None

    async def close(self) -> None:
        """Release the connection behind this response (idempotent)."""
        if self.chunks is not None:
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()


class UpstreamUnavailableError(Exception):
    """The upstream could not be reached or did not answer in time (before any byte of the answer)."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Upstream(Protocol):
    """A model provider speaking the OpenAI Chat Completions and Embeddings wire."""

    name: str

    async def list_models(self) -> list[dict[str, Any]]:
        """Return the provider's models in OpenRouter's `/models` format (`data` entries, string prices)."""
        ...

    async def list_embedding_models(self) -> list[dict[str, Any]]:
        """Return the provider's embedding models (OpenRouter's `/embeddings/models`); [] when it lists none."""
        ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send one chat completion; raise `UpstreamUnavailableError` when no answer arrives."""
        ...

    async def embed(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send one embedding request (a whole answer, never a stream); raise `UpstreamUnavailableError` as `send`."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...

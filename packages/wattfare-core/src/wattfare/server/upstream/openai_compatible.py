"""The OpenAI-compatible upstream: any `/chat/completions` + `/models` provider over HTTP (OpenRouter first).

The request body is sent as the proxy wrote it and a successful stream is handed back as raw bytes,
never re-encoded. Failures split by what the proxy can still do about them:

    UpstreamUnavailableError   no answer came (connect error, timeout before the status line or,
                               without streaming, before the whole body): nothing reached the client
    UpstreamStreamBrokenError  a 200 stream broke after it started (connection reset, read timeout,
                               truncated chunked body): the client has seen part of the answer

Error answers (status != 200) are not exceptions: their status, body (at most 1 MiB) and the headers
the proxy needs (`retry-after`, rate-limit headers) are returned for the proxy to map.
Header names in `UpstreamResponse.headers` are lower-case.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import httpx
import orjson

from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse, UpstreamUnavailableError

__all__ = ["OpenAICompatibleUpstream", "UpstreamStreamBrokenError"]

MAX_ERROR_BODY = 1024 * 1024
# Headers worth passing on: the generation id (for reconciling cost later) and the ones an error
# mapping needs to tell the client when to retry.
_KEPT_HEADERS = (
    "content-type",
    "x-generation-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)


class UpstreamStreamBrokenError(Exception):
    """A streamed answer broke after it started: the upstream closed, reset or stalled mid-stream.

    Raised from the response's `chunks` iterator, chained (`__cause__`) to the transport error. The
    client has received part of the answer, so the proxy settles what was used and ends the stream.
    """


class OpenAICompatibleUpstream:
    """An upstream speaking the OpenAI Chat Completions wire over HTTP, through one pooled client.

    Args:
        base_url: the API root, e.g. ".../api/v1" (requests go to `{base_url}/chat/completions`).
        api_key: the default key, used when a request carries no funding key of its own.
        timeout: seconds to wait for each read (and write, and a pooled connection).
        connect_timeout: seconds to wait for a new connection.
        app_name: sent as `X-Title` (OpenRouter's app attribution); None sends nothing.
        app_url: sent as `HTTP-Referer` (OpenRouter's app attribution); None sends nothing.
        http_client: a client to use instead of the built-in pool; the caller keeps ownership and
            `aclose` leaves it open.
    """

    name = "openai-compatible"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        app_name: str | None = "Wattfare",
        app_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._attribution = {
            header: value for header, value in (("X-Title", app_name), ("HTTP-Referer", app_url)) if value
        }
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            # Sized for a proxy: many concurrent long-lived streams to one host.
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0),
        )

    async def list_models(self) -> list[dict[str, Any]]:
        """Fetch `{base_url}/models` and return its `data` entries.

        Raises:
            UpstreamUnavailableError: the request failed, timed out, or the answer is not a model list.
        """
        url = f"{self._base_url}/models"
        try:
            response = await self._client.get(url, headers=self._headers(None))
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(f"timed out listing models at {url}", timed_out=True) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(f"could not list models at {url}: {exc!r}", timed_out=False) from exc
        if response.status_code != 200:
            raise UpstreamUnavailableError(f"listing models at {url} answered {response.status_code}", timed_out=False)
        try:
            data = orjson.loads(response.content).get("data")
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise UpstreamUnavailableError(f"listing models at {url} answered no JSON object", timed_out=False) from exc
        if not isinstance(data, list):
            raise UpstreamUnavailableError(f"listing models at {url} answered no `data` list", timed_out=False)
        entries = cast(list[object], data)
        return [cast(dict[str, Any], entry) for entry in entries if isinstance(entry, dict)]

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """POST the request body to `{base_url}/chat/completions`.

        Returns:
            The answer: `chunks` for a 200 stream (closing them closes the connection), else `body`.

        Raises:
            UpstreamUnavailableError: no answer (connect failure or timeout before it).
        """
        headers = self._headers(request.api_key)
        headers["content-type"] = "application/json"
        if request.stream:
            headers["accept"] = "text/event-stream"
            # Raw bytes are relayed as they come: a compressed stream would reach the proxy's parser encoded.
            headers["accept-encoding"] = "identity"
        url = f"{self._base_url}/chat/completions"
        outgoing = self._client.build_request("POST", url, content=request.body, headers=headers)
        try:
            response = await self._client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(f"timed out waiting for {url}", timed_out=True) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(f"could not reach {url}: {exc!r}", timed_out=False) from exc
        kept = {name: value for name in _KEPT_HEADERS if (value := response.headers.get(name)) is not None}
        if request.stream and response.status_code == 200:
            return UpstreamResponse(status=200, headers=kept, chunks=_RelayedStream(response))
        try:
            body = await _read(response, None if response.status_code == 200 else MAX_ERROR_BODY)
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(f"timed out reading the answer of {url}", timed_out=True) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(f"the answer of {url} broke off: {exc!r}", timed_out=False) from exc
        finally:
            await response.aclose()
        return UpstreamResponse(status=response.status_code, headers=kept, body=body)

    async def aclose(self) -> None:
        """Close the pooled client (a client passed in by the caller stays open)."""
        if self._owns_client:
            await self._client.aclose()

    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = dict(self._attribution)
        key = api_key or self._api_key
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers


async def _read(response: httpx.Response, limit: int | None) -> bytes:
    """The (decoded) body, cut at `limit` bytes: an error page must not fill the proxy's memory."""
    if limit is None:
        return await response.aread()
    parts: list[bytes] = []
    size = 0
    async with aclosing(cast(AsyncGenerator[bytes, None], response.aiter_bytes())) as chunks:
        async for part in chunks:
            parts.append(part[: limit - size])
            size += len(parts[-1])
            if size >= limit:
                break
    return b"".join(parts)


class _RelayedStream(AsyncIterator[bytes]):
    """The raw bytes of a streamed answer; closing it (or reaching its end) closes the response.

    A class rather than an async generator: `aclose` on a generator that never started does not run its
    `finally`, and the proxy may close a stream it never read (the client left first).
    """

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())

    def __aiter__(self) -> _RelayedStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._raw)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except httpx.TransportError as exc:
            await self.aclose()
            raise UpstreamStreamBrokenError(f"the upstream stream broke: {exc!r}") from exc

    async def aclose(self) -> None:
        """Close the response and its connection (idempotent)."""
        try:
            await self._raw.aclose()
        finally:
            await self._response.aclose()

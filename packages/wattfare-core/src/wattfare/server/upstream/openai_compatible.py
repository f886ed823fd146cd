"""The OpenAI-compatible upstream: any `/chat/completions` + `/models` provider over HTTP (OpenRouter first).

Embeddings go to `/embeddings`, with the same key handling, timeouts and failure mapping as a whole chat answer;
embedding models are listed at `/embeddings/models` (OpenRouter's list; a provider without one lists none).

The client is aiohttp: on the proxy's hot path it costs about a tenth of the CPU httpx does per upstream call
(measured in benchmarks/PROFILE.md), and every request pays for one.

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

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import aiohttp
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
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class UpstreamStreamBrokenError(Exception):
    """A streamed answer broke after it started: the upstream closed, reset or stalled mid-stream.

    Raised from the response's `chunks` iterator, chained (`__cause__`) to the transport error. The
    client has received part of the answer, so the proxy settles what was used and ends the stream.
    """


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.TimeoutError)


class OpenAICompatibleUpstream:
    """An upstream speaking the OpenAI Chat Completions wire over HTTP, through one pooled client.

    Args:
        base_url: the API root, e.g. ".../api/v1" (requests go to `{base_url}/chat/completions`).
        api_key: the default key, used when a request carries no funding key of its own.
        timeout: seconds to wait for each read from the upstream.
        connect_timeout: seconds to wait for a new connection (or a free one from the pool).
        app_name: sent as `X-Title` (OpenRouter's app attribution); None sends nothing.
        app_url: sent as `HTTP-Referer` (OpenRouter's app attribution); None sends nothing.
        http_client: an `aiohttp.ClientSession` to use instead of the built-in pool; the caller keeps
            ownership and `aclose` leaves it open.
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
        http_client: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._attribution = {
            header: value for header, value in (("X-Title", app_name), ("HTTP-Referer", app_url)) if value
        }
        self._owns_client = http_client is None
        self._client = http_client
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=timeout)

    def _session(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the event loop it is created in.
        if self._client is None:
            self._client = aiohttp.ClientSession(
                # Sized for a proxy: many concurrent long-lived streams to one host.
                # Idle connections are dropped after 15 s, before most servers' own keep-alive ends, so a
                # reused connection is rarely one the provider has just closed.
                # No cap on connections (`limit=0`): every request here already holds its user's money and an
                # inbound connection of its own, so a cap only queued streams past it until the connect timeout
                # answered them 504 (streams 513 and up, benchmarks/open_streams.py).
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=15.0, ttl_dns_cache=300),
                timeout=self._timeout,
            )
        return self._client

    async def list_models(self) -> list[dict[str, Any]]:
        """Fetch `{base_url}/models` and return its `data` entries.

        Raises:
            UpstreamUnavailableError: the request failed, timed out, or the answer is not a model list.
        """
        return await self._list("models", absent_is_empty=False)

    async def list_embedding_models(self) -> list[dict[str, Any]]:
        """Fetch `{base_url}/embeddings/models` and return its `data` entries ([] if the provider has no such list).

        Raises:
            UpstreamUnavailableError: the request failed, timed out, or the answer is not a model list.
        """
        return await self._list("embeddings/models", absent_is_empty=True)

    async def _list(self, path: str, *, absent_is_empty: bool) -> list[dict[str, Any]]:
        url = f"{self._base_url}/{path}"
        try:
            async with self._session().get(url, headers=self._headers(None)) as response:
                status = response.status
                content = await response.read()
        except _TRANSPORT_ERRORS as exc:
            raise UpstreamUnavailableError(
                f"could not list models at {url}: {exc!r}", timed_out=_timed_out(exc)
            ) from exc
        if status in (404, 405) and absent_is_empty:
            return []
        if status != 200:
            raise UpstreamUnavailableError(f"listing models at {url} answered {status}", timed_out=False)
        try:
            data = orjson.loads(content).get("data")
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
        return await self._post("chat/completions", request)

    async def embed(self, request: UpstreamRequest) -> UpstreamResponse:
        """POST the request body to `{base_url}/embeddings`; the answer is read whole (`body`).

        Raises:
            UpstreamUnavailableError: no answer (connect failure or timeout before the whole body).
        """
        return await self._post("embeddings", replace(request, stream=False))

    async def _post(self, path: str, request: UpstreamRequest) -> UpstreamResponse:
        headers = self._headers(request.api_key)
        headers["content-type"] = "application/json"
        if request.stream:
            headers["accept"] = "text/event-stream"
            # Raw bytes are relayed as they come: a compressed stream would reach the proxy's parser encoded.
            headers["accept-encoding"] = "identity"
        url = f"{self._base_url}/{path}"
        try:
            response = await self._session().post(url, data=request.body, headers=headers)
        except _TRANSPORT_ERRORS as exc:
            verb = "timed out waiting for" if _timed_out(exc) else "could not reach"
            raise UpstreamUnavailableError(f"{verb} {url}: {exc!r}", timed_out=_timed_out(exc)) from exc
        kept = {name: value for name in _KEPT_HEADERS if (value := response.headers.get(name)) is not None}
        if request.stream and response.status == 200:
            return UpstreamResponse(status=200, headers=kept, chunks=_RelayedStream(response))
        try:
            body = await _read(response, None if response.status == 200 else MAX_ERROR_BODY)
        except _TRANSPORT_ERRORS as exc:
            raise UpstreamUnavailableError(
                f"the answer of {url} broke off: {exc!r}", timed_out=_timed_out(exc)
            ) from exc
        finally:
            response.release()
        return UpstreamResponse(status=response.status, headers=kept, body=body)

    async def aclose(self) -> None:
        """Close the pooled client (a client passed in by the caller stays open)."""
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None

    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = dict(self._attribution)
        key = api_key or self._api_key
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers


async def _read(response: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """The (decoded) body, cut at `limit` bytes: an error page must not fill the proxy's memory."""
    if limit is None:
        return await response.read()
    parts: list[bytes] = []
    size = 0
    while size < limit:
        part = await response.content.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


class _RelayedStream(AsyncIterator[bytes]):
    """The raw bytes of a streamed answer, as they arrive; closing it (or reaching its end) frees the connection.

    A class rather than an async generator: `aclose` on a generator that never started does not run its
    `finally`, and the proxy may close a stream it never read (the client left first).
    """

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._finished = False

    def __aiter__(self) -> _RelayedStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._response.content.readany()
        except _TRANSPORT_ERRORS as exc:
            await self.aclose()
            raise UpstreamStreamBrokenError(f"the upstream stream broke: {exc!r}") from exc
        if not chunk:
            self._finished = True
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Release the connection: back to the pool after a clean end, closed when abandoned (idempotent)."""
        if self._finished:
            self._response.release()
        else:
            # Unread bytes may still be coming: the connection cannot be reused, and closing it tells a
            # provider that supports cancellation to stop generating (and billing).
            self._response.close()

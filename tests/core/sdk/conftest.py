"""A fake Wattfare server speaking the v1 wire over `httpx.MockTransport`, and drivers for both SDK twins.

Tests that hold for both `Wattfare` and `AsyncWattfare` take the `twin` fixture: a driver whose
methods are all awaitable, so one async test body exercises either client.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from wattfare import AsyncChatStream, AsyncWattfare, ChatCompletion, ChatCompletionChunk, ChatStream, Wattfare

SECRET = "sk_test_app1_0123456789abcdef"
BASE_URL = "http://wattfare.test"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GRANT = "wfg_" + "Gr4nt-t0ken_" * 3 + "0123456"  # the shape of a real token: wfg_ + 43 url-safe base64 chars

Reply = httpx.Response | Exception


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def envelope(code: str, message: str = "refused", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "type": "wattfare_error", "param": None, **extra}}


def error_response(
    status: int, code: str, message: str = "refused", *, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    headers = {"Wattfare-Request-Id": "req_err", **(headers or {})}
    if status == 402:
        headers.setdefault("x-should-retry", "false")
    return httpx.Response(status, json=envelope(code, message, **extra), headers=headers)


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    """An SSE body: each dict as a `data:` event (a str is sent raw), then `data: [DONE]`."""
    out = [e.encode() if isinstance(e, str) else b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    if done:
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    role: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    index: int = 0,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1780000000,
        "model": "openai/gpt-4o-mini",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk(*, cost: float = 0.000123, remaining: float | None = 9.5, **wattfare: Any) -> dict[str, Any]:
    """The final chunk; `wattfare` adds to its `wattfare` block (`maxTokens=..., clamped=...`)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1780000000,
        "model": "openai/gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "cost": cost},
        "wattfare": {"costUsd": cost, "remainingUsd": remaining, "requestId": "req_stream", **wattfare},
    }


HELLO_STREAM = sse(chunk(role="assistant", content=""), chunk("Hel"), chunk("lo"), chunk(finish="stop"), usage_chunk())


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent in the given pieces, optionally failing after them; records being closed."""

    def __init__(self, pieces: Iterable[bytes], *, fail_with: Exception | None = None) -> None:
        self.pieces = list(pieces)
        self.fail_with = fail_with
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.fail_with is not None:
            raise self.fail_with

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.fail_with is not None:
            raise self.fail_with

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def stream_response(body: bytes | Body, *, headers: dict[str, str] | None = None) -> httpx.Response:
    stream = body if isinstance(body, Body) else Body([body])
    headers = {
        "content-type": "text/event-stream",
        "Wattfare-Request-Id": "req_stream",
        "Wattfare-Remaining-Usd": "9.500123",
        **(headers or {}),
    }
    return httpx.Response(200, headers=headers, stream=stream)


COMPLETION = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "created": 1780000000,
    "model": "openai/gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}


def vector(text: object, dimensions: int = 3) -> list[float]:
    """The fake's embedding of one input: a few floats that depend on it."""
    seed = sum(ord(c) for c in str(text))
    return [((seed * (i + 7)) % 101 + 1) / 128 for i in range(dimensions)]


def embeddings_response(body: dict[str, Any]) -> httpx.Response:
    """What the server answers an embeddings body: one vector per input, as floats or base64 float32."""
    inputs = body["input"]
    items = [inputs] if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)) else inputs
    data: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        floats = vector(item, body.get("dimensions", 3))
        encoded: Any = floats
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(floats)}f", *floats)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(str(item)) for item in items)
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        headers={
            "Wattfare-Cost-Usd": "0.00000002",
            "Wattfare-Remaining-Usd": "9.99999998",
            "Wattfare-Request-Id": "req_emb",
        },
    )


class FakeWattfare:
    """Answers the v1 routes like the real server; scripted replies (FIFO per route) take precedence.

    It also carries the wire-building helpers above, since test modules reach this file only through
    fixtures (`--import-mode=importlib` puts no test directory on `sys.path`).
    """

    secret = SECRET
    base_url = BASE_URL
    grant = GRANT
    now = NOW
    hello_stream = HELLO_STREAM
    completion = COMPLETION
    Body = Body
    envelope = staticmethod(envelope)
    error = staticmethod(error_response)
    sse = staticmethod(sse)
    chunk = staticmethod(chunk)
    usage_chunk = staticmethod(usage_chunk)
    stream = staticmethod(stream_response)
    vector = staticmethod(vector)

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.scripts: dict[str, list[Reply]] = {}
        self.connected: set[str] = {"alice"}
        self.grants: set[str] = {GRANT}

    def script(self, route: str, *replies: Reply) -> None:
        self.scripts.setdefault(route, []).extend(replies)

    def calls(self, route: str) -> int:
        return sum(1 for r in self.requests if f"{r.method} {r.url.path}" == route)

    def last(self, route: str) -> httpx.Request:
        return [r for r in self.requests if f"{r.method} {r.url.path}" == route][-1]

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        route = f"{request.method} {request.url.path}"
        queue = self.scripts.get(route)
        if queue:
            reply = queue.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply
        if not request.headers.get("authorization", "").startswith("Bearer sk_"):
            return error_response(401, "auth", "invalid secret key")
        return self._grant_refusal(request) or self._default(request, route)

    def _grant_refusal(self, request: httpx.Request) -> httpx.Response | None:
        """What the server answers a request naming a grant it cannot serve, as WIRE.md says."""
        grant = request.headers.get("wattfare-grant")
        if grant is None:
            return None
        if "wattfare-user" in request.headers:
            return error_response(400, "invalid_request", "name a grant or a user, not both", param="Wattfare-Grant")
        if grant not in self.grants:
            return error_response(402, "grant_invalid", "this grant cannot be used")
        return None

    def _default(self, request: httpx.Request, route: str) -> httpx.Response:
        prefix = "/api/v1"
        if route == f"POST {prefix}/grants":
            body = json.loads(request.content)
            return httpx.Response(
                201,
                json={
                    "grantToken": GRANT,
                    "grantId": "gr_1",
                    "expiresAt": 1780003600,
                    "requests": body["requests"],
                    "maxUsd": body.get("maxUsd"),
                },
            )
        if route == f"GET {prefix}/grants/current":
            return httpx.Response(
                200,
                json={
                    "grantId": "gr_1",
                    "state": "active",
                    "requestsAllowed": 3,
                    "requestsUsed": 1,
                    "requestsLeft": 2,
                    "maxUsd": "0.50",
                    "spentUsd": "0.0000072",
                    "reservedUsd": "0",
                    "expiresAt": 1780003600,
                },
            )
        if route == f"POST {prefix}/sessions":
            body = json.loads(request.content)
            return httpx.Response(
                200,
                json={
                    "token": f"tok_{body['appUserId']}",
                    "expiresAt": 1780000600,
                    "connectUrl": f"{BASE_URL}/connect?session=tok",
                },
            )
        if route == f"GET {prefix}/status":
            user = request.url.params["appUserId"]
            on = user in self.connected
            return httpx.Response(
                200,
                json={
                    "connected": on,
                    "state": "active" if on else None,
                    "appUserId": user,
                    "limits": {"monthlyUsd": 10 if on else None},
                    "spentUsd": 1.25 if on else 0,
                    "remainingUsd": 8.5 if on else None,
                    "reservedUsd": 0.25 if on else 0,
                    "resetsAt": "2026-12-01T00:00:00Z",
                },
            )
        if request.method == "DELETE" and request.url.path.startswith(f"{prefix}/connections/"):
            return httpx.Response(204)
        if route == f"GET {prefix}/models":
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": [
                        {
                            "id": "openai/gpt-4o-mini",
                            "object": "model",
                            "created": 1721260800,
                            "owned_by": "openai",
                            "context_length": 128000,
                            "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "request": "0"},
                            "top_provider": {"max_completion_tokens": 16384},
                        }
                    ],
                },
            )
        if route == f"GET {prefix}/usage":
            row = {
                "appUserId": "alice",
                "model": "openai/gpt-4o-mini",
                "endpoint": "chat.completions",
                "requests": 3,
                "promptTokens": 30,
                "completionTokens": 9,
                "costUsd": 0.0000099,
            }
            report: dict[str, Any] = {"from": "2026-11-01", "to": "2026-11-30", "data": [row]}
            if "appUserId" not in request.url.params:  # the whole app's: alice's page, then bob's
                if request.url.params.get("after") == "alice":
                    report.update(data=[{**row, "appUserId": "bob"}], hasMore=False, nextAfter=None)
                else:
                    report.update(hasMore=True, nextAfter="alice")
            return httpx.Response(200, json=report)
        if route == f"POST {prefix}/chat/completions":
            if json.loads(request.content).get("stream"):
                return stream_response(HELLO_STREAM)
            return httpx.Response(
                200,
                json=COMPLETION,
                headers={
                    "Wattfare-Cost-Usd": "0.0000072",
                    "Wattfare-Remaining-Usd": "9.9999928",
                    "Wattfare-Request-Id": "req_1",
                },
            )
        if route == f"POST {prefix}/embeddings":
            return embeddings_response(json.loads(request.content))
        return error_response(404, "not_found", f"no route {route}")


class SyncDriver:
    """Drives `Wattfare`; every method is awaitable so tests are written once for both twins."""

    kind = "sync"

    def __init__(self, fake: FakeWattfare) -> None:
        self.fake = fake
        self.sleeps: list[float] = []

    def client(self, **kwargs: Any) -> Wattfare:
        kwargs.setdefault("http_client", httpx.Client(transport=httpx.MockTransport(self.fake.handler)))
        wf = Wattfare(kwargs.pop("secret_key", SECRET), kwargs.pop("base_url", BASE_URL), **kwargs)
        wf._sleep = self.sleeps.append
        wf._random = lambda: 0.0
        wf._now = lambda: NOW
        return wf

    async def call(self, value: Any) -> Any:
        return value

    async def enter(self, stream: ChatStream) -> None:
        with stream:
            pass

    async def chunks(self, stream: ChatStream) -> list[ChatCompletionChunk]:
        with stream as s:
            return list(s)

    async def texts(self, stream: ChatStream) -> list[str]:
        with stream as s:
            return list(s.text_stream)

    async def final(self, stream: ChatStream) -> ChatCompletion:
        with stream as s:
            return s.get_final_completion()

    async def texts_until_error(self, stream: ChatStream) -> tuple[list[str], Exception]:
        texts: list[str] = []
        try:
            with stream as s:
                texts.extend(s.text_stream)
        except Exception as exc:  # returned for the test to inspect
            return texts, exc
        raise AssertionError("the stream ended without an error")

    async def take(self, stream: ChatStream, n: int) -> list[ChatCompletionChunk]:
        """Read `n` chunks, then leave the block early."""
        taken: list[ChatCompletionChunk] = []
        with stream as s:
            for c in s:
                taken.append(c)
                if len(taken) == n:
                    break
        return taken

    async def fail_inside(self, stream: ChatStream, exc: Exception) -> None:
        with stream as s:
            next(iter(s))
            raise exc

    async def close(self, wf: Wattfare) -> None:
        wf.close()


class AsyncDriver:
    """Drives `AsyncWattfare` with the same methods as `SyncDriver`."""

    kind = "async"

    def __init__(self, fake: FakeWattfare) -> None:
        self.fake = fake
        self.sleeps: list[float] = []

    def client(self, **kwargs: Any) -> AsyncWattfare:
        kwargs.setdefault("http_client", httpx.AsyncClient(transport=httpx.MockTransport(self.fake.handler)))
        wf = AsyncWattfare(kwargs.pop("secret_key", SECRET), kwargs.pop("base_url", BASE_URL), **kwargs)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        wf._sleep = sleep
        wf._random = lambda: 0.0
        wf._now = lambda: NOW
        return wf

    async def call(self, value: Any) -> Any:
        return await value

    async def enter(self, stream: AsyncChatStream) -> None:
        async with stream:
            pass

    async def chunks(self, stream: AsyncChatStream) -> list[ChatCompletionChunk]:
        async with stream as s:
            return [c async for c in s]

    async def texts(self, stream: AsyncChatStream) -> list[str]:
        async with stream as s:
            return [t async for t in s.text_stream]

    async def final(self, stream: AsyncChatStream) -> ChatCompletion:
        async with stream as s:
            return await s.get_final_completion()

    async def texts_until_error(self, stream: AsyncChatStream) -> tuple[list[str], Exception]:
        texts: list[str] = []
        try:
            async with stream as s:
                async for text in s.text_stream:
                    texts.append(text)
        except Exception as exc:  # returned for the test to inspect
            return texts, exc
        raise AssertionError("the stream ended without an error")

    async def take(self, stream: AsyncChatStream, n: int) -> list[ChatCompletionChunk]:
        taken: list[ChatCompletionChunk] = []
        async with stream as s:
            async for c in s:
                taken.append(c)
                if len(taken) == n:
                    break
        return taken

    async def fail_inside(self, stream: AsyncChatStream, exc: Exception) -> None:
        async with stream as s:
            await anext(aiter(s))
            raise exc

    async def close(self, wf: AsyncWattfare) -> None:
        await wf.aclose()


@pytest.fixture
def fake() -> FakeWattfare:
    return FakeWattfare()


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest, fake: FakeWattfare) -> SyncDriver | AsyncDriver:
    return SyncDriver(fake) if request.param == "sync" else AsyncDriver(fake)

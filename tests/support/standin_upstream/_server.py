"""The stand-in's state and routes: the chat API, the price list, what it received, and OpenRouter's OAuth."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.standin_upstream._answers import (
    EMBEDDING_MODEL_IDS,
    ERROR_TYPES,
    MODEL_IDS,
    SONNET_DELAY,
    Answer,
    embedding_body,
    embedding_model_entry,
    error_response,
    hang_up_after,
    json_response,
    model_entry,
)
from tests.support.standin_upstream._openrouter_auth import OpenRouterAuth


class StandinServer:
    """The stand-in's state and routes (an ASGI app in `app`)."""

    def __init__(self, *, slow_delay: float = 0.2, timeout_delay: float = 30.0, premium_delay: float = 0.05) -> None:
        self.slow_delay = slow_delay
        self.timeout_delay = timeout_delay
        self.premium_delay = premium_delay
        self.requests: Counter[str] = Counter()
        self.last_request: Any = None
        self.last_raw = ""
        self.last_headers: dict[str, str] = {}
        self.auth = OpenRouterAuth()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/embeddings/models", self.embedding_models, methods=["GET"]),
                Route("/v1/_stats", self.stats, methods=["GET"]),
                *self.auth.routes(),
                *self.auth.keyring.routes(),
            ]
        )

    async def models(self, request: Request) -> Response:
        """Every model of the table, priced."""
        return json_response({"data": [model_entry(model_id) for model_id in MODEL_IDS]})

    async def embedding_models(self, request: Request) -> Response:
        """Every embedding model of the table, priced per input token (OpenRouter's `/embeddings/models`)."""
        return json_response({"data": [embedding_model_entry(model_id) for model_id in EMBEDDING_MODEL_IDS]})

    async def stats(self, request: Request) -> Response:
        """What the stand-in received (see `StandIn.stats`)."""
        return json_response(
            {
                "requests": dict(self.requests),
                "total": sum(self.requests.values()),
                "last_request": self.last_request,
                "last_raw": self.last_raw,
                "last_headers": self.last_headers,
                "keys": self.auth.keys,
                "exchanges": self.auth.exchanges,
                "issued": self.auth.issued,
                "managed_keys": self.auth.keyring.stats(),
                "key_calls": self.auth.keyring.calls,
            }
        )

    async def _received(self, request: Request) -> Any:
        """The request's JSON body, recorded as what the stand-in received last (None when it is not JSON)."""
        raw = await request.body()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        self.requests[str(payload.get("model", ""))] += 1
        self.last_request = payload
        self.last_raw = raw.decode(errors="replace")
        self.last_headers = {name: value for name, value in request.headers.items() if name != "content-length"}
        return payload

    async def embeddings(self, request: Request) -> Response:
        """An embedding request, answered as its model name says (recorded like a chat completion)."""
        payload = await self._received(request)
        if payload is None:
            return error_response(400, "invalid_request", "the body is not JSON")
        mode = str(payload.get("model", "")).removeprefix("standin/")
        if mode.startswith("embed-http-") and mode[11:].isdigit():
            status = int(mode[11:])
            headers = {"retry-after": "7"} if status == 429 else {}
            return error_response(status, ERROR_TYPES.get(status, "unmapped"), f"stand-in {status}", headers)
        if mode == "embed-timeout":
            await asyncio.sleep(self.timeout_delay)
        if mode.startswith("embed-slow"):
            await asyncio.sleep(self.slow_delay * 2)
        if mode == "embed-malformed":
            return Response(b"{this is not JSON", media_type="application/json")
        whole = orjson.dumps(embedding_body(payload, mode))
        if mode == "embed-hangup":
            return StreamingResponse(hang_up_after(whole[: len(whole) // 2]), media_type="application/json")
        return Response(whole, media_type="application/json")

    async def chat(self, request: Request) -> Response:
        """A chat completion, answered as its model name says."""
        payload = await self._received(request)
        if payload is None:
            return error_response(400, "invalid_request", "the body is not JSON")
        model = str(payload.get("model", ""))
        generation = f"gen-standin-{sum(self.requests.values())}"
        mode = model.removeprefix("standin/")
        stream = payload.get("stream") is True

        if mode.startswith("http-") and mode[5:].isdigit():
            status = int(mode[5:])
            headers = {"retry-after": "7"} if status == 429 else {}
            return error_response(status, ERROR_TYPES.get(status, "unmapped"), f"stand-in {status}", headers)
        refusal = self.auth.keyring.refusal(request)
        if refusal is not None:
            return refusal
        if mode == "timeout":
            await asyncio.sleep(self.timeout_delay)
        if mode == "malformed":
            kind = "text/event-stream" if stream else "application/json"
            return Response(b"data: {this is not JSON", media_type=kind, headers={"x-generation-id": generation})

        answer = Answer(payload, mode, generation)
        self.auth.keyring.meter(request, answer, stream=stream)
        if mode == "hangup" and not stream:
            whole = orjson.dumps(answer.body())
            return StreamingResponse(hang_up_after(whole[: len(whole) // 2]), media_type="application/json")
        delay = {"slow": self.slow_delay, "premium": self.premium_delay, "sonnet": SONNET_DELAY}.get(mode, 0.0)
        if not stream:
            await asyncio.sleep(delay * answer.tokens)
            return json_response(answer.body(), headers={"x-generation-id": generation})
        return StreamingResponse(
            answer.events(delay), media_type="text/event-stream", headers={"x-generation-id": generation}
        )

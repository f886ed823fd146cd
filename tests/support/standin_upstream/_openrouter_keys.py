"""OpenRouter's key management API, and keys that carry a `limit` enforced as OpenRouter enforces it.

Built from OpenRouter's documented wire (docs: "Management API Keys"; API reference "Create/Update/Get API key",
"Get current API key"):

    POST   /api/v1/keys          {name, limit?, limit_reset?}  -> 201 {data: {hash, name, limit, limit_reset,
                                                                         usage, usage_monthly, disabled, …}, key}
    GET    /api/v1/keys/{hash}                                 -> 200 {data: {…, limit_remaining}}
    PATCH  /api/v1/keys/{hash}   {limit?, disabled?, …}        -> 200 {data: {…}}
    DELETE /api/v1/keys/{hash}                                 -> 200 {deleted: true}
    GET    /api/v1/key           (the key itself)              -> 200 {data: {label, usage, limit, limit_remaining}}

The management routes take only `MANAGEMENT_KEY` (401 otherwise). A key made here, or issued by the OAuth
PKCE exchange with a `limit`, is enforced on `POST /v1/chat/completions` like OpenRouter: refused with 401 when
disabled, with 402 "Key limit exceeded" once its usage reached its limit; a stream that would pass the limit is
cut there with a 402 error chunk. Usage is each answer's tokens at the model's listed price (what Wattfare
computes from the same usage), so a ledger that metered every request agrees with `usage_monthly` exactly.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.standin_upstream._answers import Answer, error_response, json_response, model_entry

MANAGEMENT_KEY = "sk-or-v1-standin-management-key"


@dataclass
class LimitedKey:
    """One key: its text, limit (USD, None: none), reset, state and usage this month."""

    hash: str
    key: str
    name: str
    limit: Decimal | None
    limit_reset: str | None
    disabled: bool = False
    usage: Decimal = Decimal(0)

    def data(self) -> dict[str, Any]:
        remaining = None if self.limit is None else max(Decimal(0), self.limit - self.usage)
        return {
            "hash": self.hash,
            "name": self.name,
            "label": f"{self.key[:12]}...{self.key[-3:]}",
            "limit": None if self.limit is None else float(self.limit),
            "limit_reset": self.limit_reset,
            "limit_remaining": None if remaining is None else float(remaining),
            "disabled": self.disabled,
            "usage": float(self.usage),
            "usage_monthly": float(self.usage),
            "created_at": "2026-12-01T00:00:00Z",
        }


def _prices(model: str) -> tuple[Decimal, Decimal]:
    pricing = model_entry(model)["pricing"]
    return Decimal(pricing["prompt"]), Decimal(pricing["completion"])


@dataclass
class OpenRouterKeyring:
    """Keys with limits, and the management routes that make and change them."""

    keys: dict[str, LimitedKey] = field(default_factory=dict[str, LimitedKey])
    calls: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    def routes(self) -> list[Route]:
        """The routes, at OpenRouter's paths."""
        return [
            Route("/api/v1/keys", self.create, methods=["POST"]),
            Route("/api/v1/keys/{hash}", self.one, methods=["GET", "PATCH", "DELETE"]),
            Route("/api/v1/key", self.current, methods=["GET"]),
        ]

    def add(self, name: str, limit: Decimal | None, limit_reset: str | None) -> LimitedKey:
        """Make a key (the OAuth exchange makes its keys here too)."""
        text = f"sk-or-v1-{secrets.token_hex(32)}"
        made = LimitedKey(hashlib.sha256(text.encode()).hexdigest(), text, name, limit, limit_reset)
        self.keys[made.hash] = made
        return made

    def by_text(self, text: str) -> LimitedKey | None:
        """The key with this text, if it is one of ours."""
        return self.keys.get(hashlib.sha256(text.encode()).hexdigest())

    def stats(self) -> list[dict[str, Any]]:
        """Every key with its text (the stand-in is the provider: tests look for the texts where they must not be)."""
        return [key.data() | {"key": key.key} for key in self.keys.values()]

    async def _managed(self, request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        body: Any = orjson.loads(raw) if raw else {}
        self.calls.append({"method": request.method, "path": request.url.path, "body": body})
        if request.headers.get("authorization") != f"Bearer {MANAGEMENT_KEY}":
            return error_response(401, "authentication", "Only a management key may manage keys")
        return body if isinstance(body, dict) else {}

    async def create(self, request: Request) -> Response:
        """`POST /api/v1/keys`."""
        body = await self._managed(request)
        if isinstance(body, Response):
            return body
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return error_response(400, "invalid_request", "name is required")
        limit = body.get("limit")
        made = self.add(name, None if limit is None else Decimal(repr(limit)), body.get("limit_reset"))
        return json_response({"data": made.data(), "key": made.key}, status=201)

    async def one(self, request: Request) -> Response:
        """`GET`, `PATCH` and `DELETE /api/v1/keys/{hash}`."""
        body = await self._managed(request)
        if isinstance(body, Response):
            return body
        found = self.keys.get(request.path_params["hash"])
        if found is None:
            return error_response(404, "not_found", "No such key")
        if request.method == "DELETE":
            del self.keys[found.hash]
            return json_response({"deleted": True})
        if request.method == "PATCH":
            if "limit" in body:
                found.limit = None if body["limit"] is None else Decimal(repr(body["limit"]))
            if "disabled" in body:
                found.disabled = body["disabled"] is True
            if "limit_reset" in body:
                found.limit_reset = body["limit_reset"]
        return json_response({"data": found.data()})

    async def current(self, request: Request) -> Response:
        """`GET /api/v1/key`: the calling key's own limit and usage."""
        found = self.by_text(request.headers.get("authorization", "").removeprefix("Bearer "))
        if found is None:
            return error_response(401, "authentication", "No auth credentials found")
        return json_response({"data": found.data()})

    def refusal(self, request: Request) -> Response | None:
        """Whether a chat request's key refuses it before any answer (disabled: 401; at its limit: 402)."""
        found = self.by_text(request.headers.get("authorization", "").removeprefix("Bearer "))
        if found is None:
            return None
        if found.disabled:
            return error_response(401, "authentication", "This API key is disabled")
        if found.limit is not None and found.usage >= found.limit:
            return error_response(402, "payment_required", "Key limit exceeded (stand-in)")
        return None

    def meter(self, request: Request, answer: Answer, *, stream: bool) -> None:
        """Charge the answer to the request's key; a stream that would pass the key's limit is cut at it."""
        found = self.by_text(request.headers.get("authorization", "").removeprefix("Bearer "))
        if found is None:
            return
        prompt, completion = _prices(str(answer.head["model"]))
        prompt_cost = answer.prompt_tokens * prompt
        tokens = answer.tokens
        if stream and found.limit is not None and prompt_cost + tokens * completion > found.limit - found.usage:
            tokens = max(0, math.floor((found.limit - found.usage - prompt_cost) / completion))
            answer.cut_at = tokens
        found.usage += prompt_cost + tokens * completion

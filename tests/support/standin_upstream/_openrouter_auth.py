"""OpenRouter's two OAuth PKCE endpoints, as the stand-in serves them beside the chat API.

Built from OpenRouter's documented wire (docs: guides/overview/auth/oauth; API reference "Exchange
authorization code for API key"):

    GET  /auth?callback_url=<URL>&code_challenge=<C>&code_challenge_method=S256|plain[&limit=<USD>
              &usage_limit_type=daily|weekly|monthly]
         The consent page (the key it leads to carries `limit`, reset as `usage_limit_type` says). Here the
         user is taken as signed in: pressing "Authorize" (a form POST to /auth/approve) issues a code and
         redirects the browser to `<callback_url>?code=<code>`.
    POST /api/v1/auth/keys  {"code", "code_verifier", "code_challenge_method"}
         -> 200 {"key": "sk-or-v1-…", "user_id": "user_…"}
         -> 400 "Invalid code_challenge_method"; 403 "Invalid code or code_verifier";
            403 "Authorization code expired" (codes live 10 minutes and are single use); 405 if not POST.

The keys issued and the exchanges tried are kept, and reported by the stand-in's `/v1/_stats`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.standin_upstream._openrouter_keys import OpenRouterKeyring

CODE_TTL_SECONDS = 600


@dataclass
class _Code:
    challenge: str
    method: str
    issued_at: float
    used: bool = False
    limit: str = ""
    usage_limit_type: str = ""


@dataclass
class OpenRouterAuth:
    """The OAuth endpoints' state (codes, keys issued, exchanges tried) and routes."""

    codes: dict[str, _Code] = field(default_factory=dict[str, _Code])
    keys: list[str] = field(default_factory=list[str])
    exchanges: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    # The keys issued, as `{key, limit, usage_limit_type}` (what the consent page was asked for).
    issued: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    keyring: OpenRouterKeyring = field(default_factory=OpenRouterKeyring)

    def routes(self) -> list[Route]:
        """The routes, at OpenRouter's paths."""
        return [
            Route("/auth", self.consent, methods=["GET"]),
            Route("/auth/approve", self.approve, methods=["POST"]),
            Route("/api/v1/auth/keys", self.exchange, methods=["GET", "POST", "PUT", "DELETE"]),
        ]

    async def consent(self, request: Request) -> Response:
        """The consent page: one "Authorize" button."""
        query = request.query_params
        callback, challenge = query.get("callback_url", ""), query.get("code_challenge", "")
        method = query.get("code_challenge_method", "plain")
        if not callback or not challenge or method not in ("S256", "plain"):
            return HTMLResponse("<p>Missing callback_url or code_challenge.</p>", 400)
        limit, reset = query.get("limit", ""), query.get("usage_limit_type", "")
        pairs = (
            ("callback_url", callback),
            ("code_challenge", challenge),
            ("method", method),
            ("limit", limit),
            ("usage_limit_type", reset),
        )
        fields = "".join(f'<input type="hidden" name="{name}" value="{html.escape(value)}">' for name, value in pairs)
        return HTMLResponse(
            "<!doctype html><title>OpenRouter</title><h1>Authorize this app</h1>"
            f"<p>It will get an API key to use your OpenRouter credits. Callback: {html.escape(callback)}</p>"
            f'<form method="post" action="/auth/approve">{fields}'
            '<button type="submit" data-test="authorize">Authorize</button></form>'
        )

    async def approve(self, request: Request) -> Response:
        """Issue a code and send the browser back to the callback with it."""
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            form["code_challenge"],
            form["method"],
            time.time(),
            limit=form.get("limit", ""),
            usage_limit_type=form.get("usage_limit_type", ""),
        )
        callback = form["callback_url"]
        return RedirectResponse(f"{callback}{'&' if '?' in callback else '?'}code={code}", 302)

    async def exchange(self, request: Request) -> Response:
        """Exchange a code and its verifier for a key, once."""
        if request.method != "POST":
            return _error(405, "Method Not Allowed")
        try:
            body: Any = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "Invalid JSON")
        self.exchanges.append(body)
        method = body.get("code_challenge_method", "plain")
        if method not in ("S256", "plain"):
            return _error(400, "Invalid code_challenge_method")
        code = self.codes.get(str(body.get("code")))
        verifier = str(body.get("code_verifier", ""))
        if code is None or code.used or code.method != method or _challenge(verifier, method) != code.challenge:
            return _error(403, "Invalid code or code_verifier")
        code.used = True
        if time.time() - code.issued_at > CODE_TTL_SECONDS:
            return _error(403, "Authorization code expired")
        limit = Decimal(code.limit) if code.limit else None
        key = self.keyring.add("OAuth key", limit, code.usage_limit_type or None).key
        self.keys.append(key)
        self.issued.append({"key": key, "limit": code.limit or None, "usage_limit_type": code.usage_limit_type or None})
        return Response(orjson.dumps({"key": key, "user_id": f"user_{secrets.token_hex(6)}"}), 200)


def _challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _error(status: int, message: str) -> Response:
    body = orjson.dumps({"error": {"code": status, "message": message}})
    return Response(body, status, media_type="application/json")

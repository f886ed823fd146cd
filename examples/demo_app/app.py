"""The demo app's server (FastAPI): a chat page, a route that mints Wattfare sessions, a streaming chat route.

The app keeps no provider key and no budget: each visitor connects their own AI budget through Wattfare
(test keys connect at once; live keys open Wattfare's consent popup), and every completion is charged to
that visitor, within the monthly cap they chose.

`/tool` is the no-account page: a text rewriter that asks for a one-time grant ("Allow 3 requests") instead of
a connection; the page sends each text with the grant's token, and this server charges the rewrite to the grant
(`Wattfare-Grant`) and says how many requests are left. Configuration, from the environment:

    WATTFARE_SECRET_KEY       the app's secret key (server side only)
    WATTFARE_PUBLISHABLE_KEY  the app's publishable key (handed to the browser)
    WATTFARE_BASE_URL         where this server reaches Wattfare (default http://127.0.0.1:8787)
    WATTFARE_PUBLIC_URL       where browsers reach Wattfare (default: WATTFARE_BASE_URL)
    DEMO_MODEL                the model to chat with (default openai/gpt-4o-mini)
    DEMO_SUGGESTED_CAP_USD    the monthly cap the app suggests (default 5)

Run it: `uvicorn examples.demo_app.app:create_app --factory --port 8000`, or `python examples/demo_app/run.py`
to start Wattfare and the demo together.
"""

from __future__ import annotations

import html
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from wattfare import APIError, AsyncWattfare, BudgetBusyError, BudgetExceededError, UsageError

HERE = Path(__file__).parent
USER_COOKIE = "demo_user"
MAX_MESSAGE = 4000
MAX_HISTORY = 20
MAX_REWRITE = 2000
REWRITE_PROMPT = "Rewrite the user's text to be clear and friendly. Answer with the rewritten text only."

log = logging.getLogger("demo_app")


def _error_line(exc: APIError) -> dict[str, Any]:
    """The chat route's error event: the Wattfare code picks the UI state (connect, cap reached, reconnect, busy).

    Wattfare's message is for developers (it names the app's id for its user): it goes to this server's log, and
    the page words each state for the person in front of it.
    """
    log.info("chat refused: %s", exc)
    error: dict[str, Any] = {"code": getattr(exc, "code", None) or "unknown"}
    if isinstance(exc, BudgetExceededError) and exc.resets_at is not None:
        error["resetsAt"] = exc.resets_at.isoformat()
    if isinstance(exc, BudgetBusyError) and exc.retry_after is not None:
        # Still busy after the SDK's own retries: the visitor's other chats hold the budget for now.
        error["retryAfter"] = exc.retry_after
    return {"error": error}


def create_app() -> FastAPI:
    """The demo app, configured from the environment."""
    secret_key = os.environ["WATTFARE_SECRET_KEY"]
    publishable_key = os.environ["WATTFARE_PUBLISHABLE_KEY"]
    base_url = os.environ.get("WATTFARE_BASE_URL", "http://127.0.0.1:8787").rstrip("/")
    public_url = os.environ.get("WATTFARE_PUBLIC_URL", base_url).rstrip("/")
    model = os.environ.get("DEMO_MODEL", "openai/gpt-4o-mini")
    suggested_cap = os.environ.get("DEMO_SUGGESTED_CAP_USD", "5")
    wattfare = AsyncWattfare(secret_key=secret_key, base_url=base_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await wattfare.aclose()

    app = FastAPI(title="Wattfare demo", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    page = (HERE / "static" / "index.html").read_text()
    tool_page = (HERE / "static" / "tool.html").read_text()

    def user_of(request: Request) -> str | None:
        # The demo's own notion of a user: an anonymous id in a cookie. A real app uses its signed-in user's id.
        value = request.cookies.get(USER_COOKIE, "")
        return value if value.startswith("demo_") and len(value) < 64 else None

    def filled(template: str) -> str:
        config = {
            "publishableKey": publishable_key,
            "wattfareUrl": public_url,
            "model": model,
            "live": publishable_key.startswith("pk_live_"),
        }
        return template.replace("{{WATTFARE_URL}}", html.escape(public_url)).replace(
            "{{CONFIG}}", json.dumps(config).replace("<", "\\u003c")
        )

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> Response:
        response = HTMLResponse(filled(page))
        if user_of(request) is None:
            user = f"demo_{secrets.token_hex(8)}"
            response.set_cookie(USER_COOKIE, user, httponly=True, samesite="lax", max_age=30 * 86400)
        return response

    @app.post("/api/ai-session")
    async def ai_session(request: Request) -> Response:
        """Mint a Wattfare session for this visitor (the browser never sees the secret key)."""
        user = user_of(request)
        if user is None:
            return JSONResponse({"error": {"code": "auth", "message": "No demo user: reload the page."}}, 401)
        session = await wattfare.create_session(user, monthly_usd=suggested_cap)
        return JSONResponse({"token": session.token, "expiresAt": int(session.expires_at.timestamp())})

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        """Stream a reply charged to this visitor, as NDJSON lines: `{text}`… then `{done}` or `{error}`.

        `done` says what the reply cost, what is left, and `clamped`: Wattfare lowered the reply's `max_tokens`
        because the visitor's cap is nearly used, which the page says under the reply.
        """
        user = user_of(request)
        body: Any = await request.json()
        history = body.get("messages") if isinstance(body, dict) else None
        if user is None or not isinstance(history, list) or not history:
            return JSONResponse({"error": {"code": "invalid_request", "message": "Send {messages: [...]}."}}, 400)
        messages = [
            {
                "role": "assistant" if item.get("role") == "assistant" else "user",
                "content": str(item.get("content"))[:MAX_MESSAGE],
            }
            for item in history[-MAX_HISTORY:]
            if isinstance(item, dict)
        ]

        async def lines() -> AsyncIterator[bytes]:
            try:
                async with wattfare.user(user).stream(model=model, messages=messages) as stream:
                    async for text in stream.text_stream:
                        yield json.dumps({"text": text}).encode() + b"\n"
                done = {
                    "done": True,
                    "costUsd": str(stream.cost_usd),
                    "remainingUsd": str(stream.remaining_usd),
                    "clamped": stream.clamped is True,
                }
                yield json.dumps(done).encode() + b"\n"
            except APIError as exc:
                yield json.dumps(_error_line(exc)).encode() + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.get("/tool", response_class=HTMLResponse)
    async def tool() -> Response:
        """The no-account text rewriter: it asks the visitor for a one-time grant, not a connection."""
        return HTMLResponse(filled(tool_page))

    @app.post("/api/rewrite")
    async def rewrite(request: Request) -> Response:
        """Rewrite `text`, charged to the grant `grantToken`: `{text, requestsLeft}`, or `{error: {code, message}}`.

        Wattfare's message is shown when the grant has ended (`grant_invalid`): it says why (used up, expired,
        revoked), in words meant for the person who approved it.
        """
        body: Any = await request.json()
        text = body.get("text") if isinstance(body, dict) else None
        token = body.get("grantToken") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip() or not isinstance(token, str):
            return JSONResponse({"error": {"code": "invalid_request", "message": "Send {text, grantToken}."}}, 400)
        try:
            grant = wattfare.grant(token)
            reply = await grant.chat(
                model=model,
                messages=[
                    {"role": "system", "content": REWRITE_PROMPT},
                    {"role": "user", "content": text[:MAX_REWRITE]},
                ],
            )
            left = (await grant.status()).requests_left
        except UsageError:
            return JSONResponse({"error": {"code": "invalid_request", "message": "That is not a grant token."}}, 400)
        except APIError as exc:
            log.info("rewrite refused: %s", exc)
            code = getattr(exc, "code", None) or "unknown"
            return JSONResponse(
                {"error": {"code": code, "message": exc.message}}, 402 if code == "grant_invalid" else 502
            )
        answer = reply.choices[0].message.content if reply.choices else None
        return JSONResponse({"text": answer or "", "requestsLeft": left})

    return app

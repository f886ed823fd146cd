"""A stand-in for OpenRouter's two OAuth PKCE endpoints, run by tests as a real process on 127.0.0.1.

Built from OpenRouter's documented wire (docs: guides/overview/auth/oauth; API reference "Exchange
authorization code for API key"):

    GET  /auth?callback_url=<URL>&code_challenge=<C>&code_challenge_method=S256|plain
         The consent page. Here the user is taken as signed in: pressing "Authorize" (a form POST to
         /auth/approve) issues a code and redirects the browser to `<callback_url>?code=<code>`.
    POST /api/v1/auth/keys  {"code", "code_verifier", "code_challenge_method"}
         -> 200 {"key": "sk-or-v1-…", "user_id": "user_…"}
         -> 400 "Invalid code_challenge_method"; 403 "Invalid code or code_verifier";
            403 "Authorization code expired" (codes live 10 minutes and are single use); 405 if not POST.

Also `GET /_stats`: the keys issued and the exchanges tried, so tests can check what Wattfare did.
Run it: `python tests/server/web/openrouter_standin.py --port 0 --port-file F`, or `with run_openrouter() as o:`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

CODE_TTL_SECONDS = 600


@dataclass
class _Code:
    challenge: str
    method: str
    issued_at: float
    used: bool = False


@dataclass
class OpenRouterStandin:
    """The stand-in's state and routes."""

    codes: dict[str, _Code] = field(default_factory=dict[str, _Code])
    keys: list[str] = field(default_factory=list[str])
    exchanges: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/auth", self.consent, methods=["GET"]),
                Route("/auth/approve", self.approve, methods=["POST"]),
                Route("/api/v1/auth/keys", self.exchange, methods=["GET", "POST", "PUT", "DELETE"]),
                Route("/_stats", self.stats, methods=["GET"]),
            ]
        )

    async def consent(self, request: Request) -> Response:
        query = request.query_params
        callback, challenge = query.get("callback_url", ""), query.get("code_challenge", "")
        method = query.get("code_challenge_method", "plain")
        if not callback or not challenge or method not in ("S256", "plain"):
            return HTMLResponse("<p>Missing callback_url or code_challenge.</p>", 400)
        fields = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in (("callback_url", callback), ("code_challenge", challenge), ("method", method))
        )
        return HTMLResponse(
            "<!doctype html><title>OpenRouter</title><h1>Authorize this app</h1>"
            f"<p>It will get an API key to use your OpenRouter credits. Callback: {html.escape(callback)}</p>"
            f'<form method="post" action="/auth/approve">{fields}'
            '<button type="submit" data-test="authorize">Authorize</button></form>'
        )

    async def approve(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(form["code_challenge"], form["method"], time.time())
        callback = form["callback_url"]
        return RedirectResponse(f"{callback}{'&' if '?' in callback else '?'}code={code}", 302)

    async def exchange(self, request: Request) -> Response:
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
        key = f"sk-or-v1-{secrets.token_hex(32)}"
        self.keys.append(key)
        return Response(orjson.dumps({"key": key, "user_id": f"user_{secrets.token_hex(6)}"}), 200)

    async def stats(self, request: Request) -> Response:
        return Response(orjson.dumps({"keys": self.keys, "exchanges": self.exchanges}), media_type="application/json")


def _challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _error(status: int, message: str) -> Response:
    body = orjson.dumps({"error": {"code": status, "message": message}})
    return Response(body, status, media_type="application/json")


# ---------------------------------------------------------------------------------------- process


@dataclass(frozen=True)
class RunningOpenRouter:
    """A running stand-in: `url` is what Wattfare's WATTFARE_OPENROUTER_URL points at."""

    url: str
    pid: int

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=5) as response:
            return orjson.loads(response.read())


@contextmanager
def run_openrouter(startup_timeout: float = 15.0) -> Generator[RunningOpenRouter, None, None]:
    """Start the stand-in on a free loopback port; stop it (by its PID) on exit."""
    with tempfile.TemporaryDirectory(prefix="openrouter-") as tmp:
        port_file, log = Path(tmp, "port"), Path(tmp, "openrouter.log")
        command = [sys.executable, str(Path(__file__).resolve()), "--port", "0", "--port-file", str(port_file)]
        with log.open("wb") as log_stream:
            process = subprocess.Popen(command, stdout=log_stream, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_timeout
            while not port_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the OpenRouter stand-in did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.02)
            yield RunningOpenRouter(f"http://127.0.0.1:{int(port_file.read_text())}", process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def _serve(port: int, port_file: Path | None) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(OpenRouterStandin().app(), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if port_file is not None and server.started:
        partial = port_file.with_suffix(".partial")
        partial.write_text(str(sock.getsockname()[1]))
        os.replace(partial, port_file)
    await serving


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in until interrupted."""
    parser = argparse.ArgumentParser(description="A stand-in for OpenRouter's OAuth PKCE endpoints.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.port_file))


if __name__ == "__main__":
    main()

"""A stand-in OpenAI-compatible model provider, run by tests as a real process on 127.0.0.1.

The model provider is the one component tests may replace. The proxy forwards only the request body,
so the behaviour is chosen per request by the model name:

    standin/ok (or any other name)  text, streaming, usage as OpenAI (stream usage only when
                                    `stream_options.include_usage`), honours max_tokens (20 tokens)
    standin/cost-<usd>              as ok, and `usage.cost` = <usd> like OpenRouter (always sent)
    standin/long-context            as ok; its listed price has an `overrides` entry
    standin/http-<status>           500, 502, 401, 402, 429 (with Retry-After: 7): OpenRouter error body
    standin/timeout                 sleeps 30 s (--timeout-delay) before answering
    standin/malformed               200 with a body that is not JSON
    standin/midstream-error         stream: 3 tokens, then OpenRouter's error chunk, then the end
    standin/hangup                  stream: 3 tokens, then the connection is dropped (no [DONE])
    standin/slow                    stream: one token every 200 ms (--slow-delay), 50 tokens
    standin/runaway                 ignores max_tokens: 500 tokens, and usage that reports them
    standin/no-usage                as ok, but never any usage
    standin/negative-usage          as ok, but its usage reports negative token counts (a broken upstream)
    standin/premium                 priced like a premium model ($3/M prompt, $15/M completion, 64k max
                                    output); its 20 tokens come 50 ms apart (--premium-delay), so hang-ups
                                    can land anywhere in the stream (a whole answer waits as long)
    standin/sonnet                  priced as standin/premium (Claude Sonnet's prices and 64k output); a
                                    chat answer of 200 tokens, 10 ms apart (2 s: parallel requests overlap)

Also `GET /v1/models` (OpenRouter format, every id above priced) and `GET /v1/_stats` (requests per
model, the last request body, parsed and raw, and its headers) so tests can assert what the proxy sent upstream.

Run it: `python tests/support/standin_upstream.py --port 0 --port-file F` (F gets the bound port once
the server accepts connections), or from a test: `with run_standin() as standin: standin.base_url`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

PROMPT_PRICE = "0.000001"
COMPLETION_PRICE = "0.000002"
PREMIUM_PROMPT_PRICE = "0.000003"
PREMIUM_COMPLETION_PRICE = "0.000015"
PREMIUM_MAX_OUTPUT = 64_000
NORMAL_TOKENS = 20
SONNET_TOKENS = 200
SONNET_DELAY = 0.01
SLOW_TOKENS = 50
RUNAWAY_TOKENS = 500
TOKENS_BEFORE_FAILURE = 3
ERROR_TYPES = {
    401: "authentication",
    402: "payment_required",
    429: "rate_limit_exceeded",
    500: "server",
    502: "provider_unavailable",
}
MODEL_IDS = (
    "standin/ok",
    "standin/cost-0.000123",
    "standin/long-context",
    *(f"standin/http-{status}" for status in sorted(ERROR_TYPES)),
    "standin/timeout",
    "standin/malformed",
    "standin/midstream-error",
    "standin/hangup",
    "standin/slow",
    "standin/runaway",
    "standin/no-usage",
    "standin/negative-usage",
    "standin/premium",
    "standin/sonnet",
)


class Hangup(Exception):
    """Raised inside a streaming body: uvicorn then drops the connection mid-answer."""


class StandinServer:
    """The stand-in's state and routes."""

    def __init__(self, *, slow_delay: float = 0.2, timeout_delay: float = 30.0, premium_delay: float = 0.05) -> None:
        self.slow_delay = slow_delay
        self.timeout_delay = timeout_delay
        self.premium_delay = premium_delay
        self.requests: Counter[str] = Counter()
        self.last_request: Any = None
        self.last_raw = ""
        self.last_headers: dict[str, str] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/_stats", self.stats, methods=["GET"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        return _json({"data": [_model_entry(model_id) for model_id in MODEL_IDS]})

    async def stats(self, request: Request) -> Response:
        return _json(
            {
                "requests": dict(self.requests),
                "total": sum(self.requests.values()),
                "last_request": self.last_request,
                "last_raw": self.last_raw,
                "last_headers": self.last_headers,
            }
        )

    async def chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request", "the body is not JSON")
        model = str(payload.get("model", ""))
        self.requests[model] += 1
        self.last_request = payload
        self.last_raw = raw.decode(errors="replace")
        self.last_headers = {name: value for name, value in request.headers.items() if name != "content-length"}
        generation = f"gen-standin-{sum(self.requests.values())}"
        mode = model.removeprefix("standin/")
        stream = payload.get("stream") is True

        if mode.startswith("http-") and mode[5:].isdigit():
            status = int(mode[5:])
            headers = {"retry-after": "7"} if status == 429 else {}
            return _error(status, ERROR_TYPES.get(status, "unmapped"), f"stand-in {status}", headers)
        if mode == "timeout":
            await asyncio.sleep(self.timeout_delay)
        if mode == "malformed":
            kind = "text/event-stream" if stream else "application/json"
            return Response(b"data: {this is not JSON", media_type=kind, headers={"x-generation-id": generation})

        answer = _Answer(payload, mode, generation)
        if mode == "hangup" and not stream:
            whole = orjson.dumps(answer.body())
            return StreamingResponse(_hang_up_after(whole[: len(whole) // 2]), media_type="application/json")
        delay = {"slow": self.slow_delay, "premium": self.premium_delay, "sonnet": SONNET_DELAY}.get(mode, 0.0)
        if not stream:
            await asyncio.sleep(delay * answer.tokens)
            return _json(answer.body(), headers={"x-generation-id": generation})
        return StreamingResponse(
            answer.events(delay), media_type="text/event-stream", headers={"x-generation-id": generation}
        )


class _Answer:
    def __init__(self, payload: dict[str, Any], mode: str, generation: str) -> None:
        self.mode = mode
        limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
        count = {"slow": SLOW_TOKENS, "runaway": RUNAWAY_TOKENS, "sonnet": SONNET_TOKENS}.get(mode, NORMAL_TOKENS)
        self.truncated = mode != "runaway" and isinstance(limit, int) and limit < count
        self.tokens = limit if self.truncated and isinstance(limit, int) else count
        messages = payload.get("messages") or []
        size = sum(len(str(message.get("content") or "").encode()) for message in messages)
        self.prompt_tokens = min(math.ceil(size / 4) + 3 * len(messages), size)
        options = payload.get("stream_options") or {}
        self.include_usage = options.get("include_usage") is True
        self.head = {
            "id": f"chatcmpl-{generation}",
            "created": int(time.time()),
            "model": str(payload.get("model", "")),
            "system_fingerprint": "standin",
        }

    @property
    def finish_reason(self) -> str:
        return "length" if self.truncated else "stop"

    def text(self, index: int) -> str:
        return f"word{index}" if index == self.tokens - 1 else f"word{index} "

    def usage(self) -> dict[str, Any] | None:
        if self.mode == "no-usage":
            return None
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.tokens,
            "total_tokens": self.prompt_tokens + self.tokens,
        }
        if self.mode == "negative-usage":
            usage = {"prompt_tokens": -self.prompt_tokens, "completion_tokens": -self.tokens, "total_tokens": 0}
        if self.mode.startswith("cost-"):
            usage["cost"] = float(self.mode.removeprefix("cost-"))
            usage["is_byok"] = False
            usage["cost_details"] = {"upstream_inference_cost": None}
        return usage

    def body(self) -> dict[str, Any]:
        if self.mode in ("midstream-error", "hangup"):
            self.tokens = min(self.tokens, TOKENS_BEFORE_FAILURE)
        content = "".join(self.text(index) for index in range(self.tokens))
        body: dict[str, Any] = {
            **self.head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "error" if self.mode == "midstream-error" else self.finish_reason,
                }
            ],
        }
        if self.mode == "midstream-error":
            body["error"] = _error_object(502, "provider_unavailable", "stand-in failed mid-answer")
        elif (usage := self.usage()) is not None:
            body["usage"] = usage
        return body

    async def events(self, delay: float) -> AsyncIterator[bytes]:
        failing = self.mode in ("midstream-error", "hangup")
        for index in range(self.tokens):
            if failing and index == TOKENS_BEFORE_FAILURE:
                if self.mode == "hangup":
                    raise Hangup("the stand-in drops the connection mid-stream")
                error = _error_object(502, "provider_unavailable", "stand-in failed mid-stream")
                yield self.event([{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}], error=error)
                return
            if delay and index:
                await asyncio.sleep(delay)
            delta: dict[str, Any] = {"content": self.text(index)}
            if index == 0:
                delta["role"] = "assistant"
            yield self.event([{"index": 0, "delta": delta, "finish_reason": None}])
        yield self.event([{"index": 0, "delta": {}, "finish_reason": self.finish_reason}])
        usage = self.usage()
        # OpenRouter always sends usage (with cost); OpenAI only when asked.
        if usage is not None and (self.include_usage or "cost" in usage):
            yield self.event([], usage=usage)
        yield b"data: [DONE]\n\n"

    def event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {**self.head, "object": "chat.completion.chunk", "choices": choices, **extra}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _hang_up_after(part: bytes) -> AsyncIterator[bytes]:
    yield part
    raise Hangup("the stand-in drops the connection mid-body")


def _model_entry(model_id: str) -> dict[str, Any]:
    pricing: dict[str, Any] = {"prompt": PROMPT_PRICE, "completion": COMPLETION_PRICE}
    max_output = 4096
    if model_id == "standin/long-context":
        pricing["overrides"] = [{"min_prompt_tokens": 1000, "prompt": "0.000002", "completion": "0.000004"}]
    if model_id in ("standin/premium", "standin/sonnet"):
        pricing = {"prompt": PREMIUM_PROMPT_PRICE, "completion": PREMIUM_COMPLETION_PRICE}
        max_output = PREMIUM_MAX_OUTPUT
    return {
        "id": model_id,
        "name": f"Stand-in: {model_id.removeprefix('standin/')}",
        "created": 1735689600,
        "context_length": 200_000 if model_id in ("standin/premium", "standin/sonnet") else 32768,
        "pricing": pricing,
        "top_provider": {"context_length": 32768, "max_completion_tokens": max_output},
        "supported_parameters": ["max_tokens", "stop", "stream", "tools", "response_format"],
    }


def _error_object(status: int, error_type: str, message: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"error_type": error_type}
    if status == 402:
        metadata |= {"limit_source": "openrouter_key_limit", "remedy_hint": "raise the key's limit"}
    return {"code": status, "message": message, "metadata": metadata}


def _error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": _error_object(status, error_type, message)}, status=status, headers=headers)


def _json(content: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


# ---------------------------------------------------------------------------------------- process


@dataclass(frozen=True)
class StandIn:
    """A running stand-in process.

    Attributes:
        base_url: the OpenAI-style API root, "http://127.0.0.1:<port>/v1".
        port: the bound port.
        pid: the process id.
        log: the file the process writes its stderr to.
    """

    base_url: str
    port: int
    pid: int
    log: Path

    def stats(self) -> dict[str, Any]:
        """What the stand-in received: `requests` per model, `total`, `last_request`, `last_raw`, `last_headers`."""
        with urllib.request.urlopen(f"{self.base_url}/_stats", timeout=5) as response:
            return orjson.loads(response.read())


@contextmanager
def run_standin(
    *, slow_delay: float = 0.2, timeout_delay: float = 30.0, premium_delay: float = 0.05, startup_timeout: float = 15.0
) -> Generator[StandIn, None, None]:
    """Start the stand-in as a subprocess on a free loopback port; stop it (by its PID) on exit.

    Args:
        slow_delay: seconds between tokens of `standin/slow`.
        timeout_delay: seconds `standin/timeout` waits before answering.
        premium_delay: seconds between tokens of `standin/premium`.
        startup_timeout: seconds to wait for the port file.
    """
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        port_file, log = Path(tmp, "port"), Path(tmp, "standin.log")
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--slow-delay",
            str(slow_delay),
            "--timeout-delay",
            str(timeout_delay),
            "--premium-delay",
            str(premium_delay),
        ]
        with log.open("wb") as log_stream:
            process = subprocess.Popen(command, stdout=log_stream, stderr=subprocess.STDOUT)
        try:
            port = _wait_for_port(process, port_file, log, startup_timeout)
            yield StandIn(base_url=f"http://127.0.0.1:{port}/v1", port=port, pid=process.pid, log=log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_for_port(process: subprocess.Popen[bytes], port_file: Path, log: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            return int(port_file.read_text())
        if process.poll() is not None:
            raise RuntimeError(f"the stand-in exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.02)
    raise RuntimeError(f"the stand-in did not start within {timeout} s:\n{log.read_text(errors='replace')}")


async def _serve(server: StandinServer, port: int, port_file: Path | None) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    # A long keep-alive, like real providers behind a CDN: with uvicorn's 5 s default, a pooled connection
    # the proxy reuses can be closed under it, turning one request in thousands into a spurious 502.
    config = uvicorn.Config(
        server.app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=120,
    )
    uvicorn_server = uvicorn.Server(config)
    serving = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))
    while not uvicorn_server.started and not serving.done():
        await asyncio.sleep(0.01)
    if port_file is not None and uvicorn_server.started:
        # Written whole then renamed, so the waiting test never reads half a number.
        partial = port_file.with_suffix(".partial")
        partial.write_text(str(sock.getsockname()[1]))
        os.replace(partial, port_file)
    await serving


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in until interrupted."""
    parser = argparse.ArgumentParser(description="A stand-in OpenAI-compatible upstream for tests.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--slow-delay", type=float, default=0.2)
    parser.add_argument("--timeout-delay", type=float, default=30.0)
    parser.add_argument("--premium-delay", type=float, default=0.05)
    args = parser.parse_args(argv)
    server = StandinServer(
        slow_delay=args.slow_delay, timeout_delay=args.timeout_delay, premium_delay=args.premium_delay
    )
    asyncio.run(_serve(server, args.port, args.port_file))


if __name__ == "__main__":
    main()

"""The practical floor for a Python proxy: a minimal ASGI app relaying to the upstream.

Same stack as Wattfare's hot path (uvicorn with its default loop and HTTP parser, and by default
Wattfare's own upstream client, so the floor follows it when it changes) and nothing else: no auth,
no metering, no JSON parsing, no routing, no access log.
Whatever Wattfare costs above this is the price of its features and framework.

Run: `python benchmarks/bare_proxy.py --port P --upstream http://127.0.0.1:N/v1`
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import uvicorn

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def build_httptools(upstream: str) -> Callable[[Message, Receive, Send], Awaitable[None]]:
    """The same relay over whatif.py's minimal httptools client (what the floor becomes with that client)."""
    from whatif import RawUpstream

    return _relay(RawUpstream(upstream, "bench"))


def build_wattfare_client(upstream: str) -> Callable[[Message, Receive, Send], Awaitable[None]]:
    """The relay over Wattfare's own upstream client (`OpenAICompatibleUpstream`): the fair floor."""
    from wattfare.server.upstream.openai_compatible import OpenAICompatibleUpstream

    return _relay(OpenAICompatibleUpstream(upstream, "bench", app_name=None))


def _relay(client: Any) -> Callable[[Message, Receive, Send], Awaitable[None]]:

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        stream = any(name == b"accept" and b"event-stream" in value for name, value in scope["headers"])
        answer = await client.send(_Request(body, stream))
        content_type = answer.headers.get("content-type", "application/json").encode()
        start = {"type": "http.response.start", "status": answer.status, "headers": [(b"content-type", content_type)]}
        await send(start)
        if answer.chunks is not None:
            async for chunk in answer.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            await send({"type": "http.response.body", "body": answer.body or b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


class _Request:
    def __init__(self, body: bytes, stream: bool) -> None:
        self.body = body
        self.stream = stream
        self.api_key = None


def build(upstream: str) -> Callable[[Message, Receive, Send], Awaitable[None]]:
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(300.0, connect=10.0),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0),
    )
    url = upstream.rstrip("/") + "/chat/completions"

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {"content-type": "application/json", "authorization": "Bearer bench"}
        for name, value in scope["headers"]:
            if name == b"accept":
                headers["accept"] = value.decode()
        request = client.build_request("POST", url, content=body, headers=headers)
        response = await client.send(request, stream=True)
        try:
            content_type = response.headers.get("content-type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(b"content-type", content_type)],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await response.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument(
        "--client", choices=["wattfare", "httpx", "httptools"], default="wattfare", help="the upstream HTTP client"
    )
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn", help="the ASGI server")
    args = parser.parse_args()
    builders = {"wattfare": build_wattfare_client, "httpx": build, "httptools": build_httptools}
    app = builders[args.client](args.upstream)
    if args.server == "granian":
        from whatif import serve_with_granian

        serve_with_granian(app, args.host, args.port)
        return
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

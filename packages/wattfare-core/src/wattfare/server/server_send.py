"""The ASGI server's own `send`, kept in the scope for the stream relay's body messages.

Between the server and the relay sit three wrappers of `send` (Starlette's error middleware, the request
observer and the proxy's error envelope), and each only looks at `http.response.start`: once the response has
started, every streamed event went through three coroutines that passed it on untouched, a third of the CPU
per relayed event under load (benchmarks/open_streams_why.py). The relay sends its start and its end through
the wrapped `send`, so every wrapper still sees both, and the events in between through the server's.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

_KEY = "wattfare.server_send"


class KeepsServerSend(Starlette):
    """The app, keeping the server's `send` in each HTTP request's scope (see `server_send`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] == "http":
            keep_server_send(scope, send)
        await super().__call__(scope, receive, send)


def keep_server_send(scope: Scope, send: Send) -> None:
    """Keep `send`, the server's own, in `scope` for `server_send`."""
    scope[_KEY] = send


def server_send(scope: Scope, wrapped: Send) -> Send:
    """The server's `send` for body messages after the start went through `wrapped`; `wrapped` without one."""
    return scope.get(_KEY, wrapped)

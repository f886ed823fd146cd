"""A real webhook receiver for tests: an HTTP server on a loopback port, in a thread of its own, keeping what it gets.

Wattfare's delivery loop posts to it as to any app's endpoint. It records every request (its headers and body) the
moment it arrives, then answers as the test says: 200 at once (the default), another status (`answer_with(500)`),
or nothing at all: `hang()` holds the next request open without a word, as a stalled endpoint would, until the test
calls `release()` (or the receiver stops); a held request is then hung up on, never answered. Tests read what
arrived and verify it with the SDK's `wattfare.webhooks.verify`, as an app's backend would.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import anyio

from wattfare import webhooks

HOLD_AT_MOST = 120.0  # seconds a hanging request is held when the test never releases it


@dataclass
class Arrival:
    """One request as it reached the receiver, and what the receiver answered (None: held, or hung up on)."""

    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int | None = None

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header: the event's id, the same on every attempt."""
        return self.headers["webhook-id"]

    @property
    def answered_ok(self) -> bool:
        """The receiver answered 2xx: from the sender's point of view, delivered."""
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> dict[str, Any]:
        """The body as JSON."""
        return json.loads(self.body)

    def verify(self, secret: str) -> webhooks.WebhookEvent:
        """The event, after checking the signature with `secret` as an app would (raises when it fails)."""
        return webhooks.verify(self.body, self.headers, secret)


class WebhookReceiver:
    """The running receiver: its `url`, what arrived so far, and how it answers from now on."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.url = f"http://{host}:{port}{path}"
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._status = 200
        self._to_hang = 0
        self._released = threading.Event()

    # ------------------------------------------------------------------ what the test says

    def answer_with(self, status: int) -> None:
        """Answer every request from now on with `status` (200 at first)."""
        with self._lock:
            self._status = status

    def hang(self, count: int = 1) -> None:
        """Hold the next `count` requests open without answering, until `release`."""
        with self._lock:
            self._to_hang += count
            self._released.clear()

    def release(self) -> None:
        """Let the held requests go: each connection is closed without an answer."""
        self._released.set()

    # ------------------------------------------------------------------ what arrived

    def arrivals(self) -> list[Arrival]:
        """Every request so far, in the order they arrived."""
        with self._lock:
            return list(self._arrivals)

    def ids(self) -> set[str]:
        """The distinct `webhook-id`s that arrived."""
        return {arrival.webhook_id for arrival in self.arrivals()}

    def delivered_counts(self) -> Counter[str]:
        """How many times each `webhook-id` was answered 2xx."""
        return Counter(arrival.webhook_id for arrival in self.arrivals() if arrival.answered_ok)

    def of(self, webhook_id: str) -> list[Arrival]:
        """The attempts of one event."""
        return [arrival for arrival in self.arrivals() if arrival.webhook_id == webhook_id]

    async def wait_until(
        self, condition: Callable[[list[Arrival]], bool], within: float, what: str = "the expected webhooks"
    ) -> list[Arrival]:
        """Wait (without blocking the event loop) until `condition(arrivals)` holds; return the arrivals."""
        with anyio.move_on_after(within):
            while not condition(arrivals := self.arrivals()):
                await anyio.sleep(0.05)
            return arrivals
        summary = [(a.webhook_id, a.status, a.json().get("type")) for a in self.arrivals()]
        raise AssertionError(f"{what} did not arrive within {within} s; arrived: {summary}")

    # ------------------------------------------------------------------ the server's side

    def _arrived(self, headers: dict[str, str], body: bytes) -> tuple[Arrival, int | None]:
        with self._lock:
            arrival = Arrival(headers, body)
            self._arrivals.append(arrival)
            if self._to_hang > 0:
                self._to_hang -= 1
                return arrival, None
            arrival.status = self._status
            return arrival, self._status

    def _hold(self) -> None:
        self._released.wait(HOLD_AT_MOST)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a held request never keeps the test from ending
    # socketserver's default backlog is 5: concurrent deliveries from several processes would find connections
    # reset before the receiver ever saw them (an endpoint's fault, not what these tests are about).
    request_queue_size = 256
    receiver: WebhookReceiver


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        receiver = cast(_Server, self.server).receiver
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        _, status = receiver._arrived({name.lower(): value for name, value in self.headers.items()}, body)
        if status is None:
            receiver._hold()
            self.close_connection = True  # hang up without a word
            return
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows what the test asserts


@contextmanager
def webhook_receiver(path: str = "/hooks/wattfare") -> Iterator[WebhookReceiver]:
    """A running receiver on 127.0.0.1 (a free port), stopped afterwards; held requests are let go first."""
    server = _Server(("127.0.0.1", 0), _Handler)
    receiver = WebhookReceiver("127.0.0.1", int(server.server_address[1]), path)
    server.receiver = receiver
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
        thread.join(10)

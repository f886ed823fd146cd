"""Other websites for the browser tests: tiny static servers on loopback, each its own origin.

Real loopback servers rather than pages faked inside the browser: Chromium keeps public sites from calling
local addresses (Private Network Access), so a faked `http://evil.test` could not even try to reach Wattfare
on 127.0.0.1, and the tests would prove nothing about Wattfare's own refusals.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Site:
    """A site whose every page is `html` (changeable while it runs)."""

    def __init__(self) -> None:
        self.html = "<!doctype html><title>empty</title>"
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.html.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def sites(count: int) -> Iterator[list[Site]]:
    """`count` running sites, stopped afterwards."""
    running = [Site() for _ in range(count)]
    threads = [threading.Thread(target=site.serve, daemon=True) for site in running]
    for thread in threads:
        thread.start()
    try:
        yield running
    finally:
        for site in running:
            site.stop()
        for thread in threads:
            thread.join(5)

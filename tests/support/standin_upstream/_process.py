"""The stand-in as a real process on 127.0.0.1: started, waited for, asked what it received, stopped by PID.

A process of its own, not a thread of the test: Wattfare's upstream client then meets a real server (its own
event loop, sockets, keep-alive and hang-ups), and a test's own event loop never slows the stand-in down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from tests.support.standin_upstream._server import StandinServer

_REPO = Path(__file__).resolve().parents[3]  # where `tests` is importable from
# Longer than any client's pooled keep-alive (Wattfare's is 30 s), like real providers behind a CDN: with
# uvicorn's 5 s default, a connection the client reuses could be closed under it at that very moment, and
# one request in thousands would fail with a `ReadError` (a spurious 502) that is no part of any test.
KEEP_ALIVE_SECONDS = 120
BACKLOG = 2048  # uvicorn's default


@dataclass(frozen=True)
class StandIn:
    """A running stand-in process.

    Attributes:
        base_url: the OpenAI-style API root, "http://127.0.0.1:<port>/v1".
        port: the bound port.
        pid: the process id.
        log: the file the process writes its output to.
    """

    base_url: str
    port: int
    pid: int
    log: Path

    @property
    def url(self) -> str:
        """The server's root, where OpenRouter's OAuth pages are (what WATTFARE_OPENROUTER_URL points at)."""
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        """What the stand-in received.

        `requests` per model, `total`, the `last_request` (parsed), `last_raw` and `last_headers` of chat
        completions; the OAuth `keys` issued and `exchanges` tried.
        """
        with urllib.request.urlopen(f"{self.base_url}/_stats", timeout=5) as response:
            return orjson.loads(response.read())

    def upstream_env(self, upstream_key: str = "test-key") -> dict[str, str]:
        """The environment that points a Wattfare process's test keys at this stand-in, with `upstream_key`."""
        return {
            "WATTFARE_UPSTREAM": "openai-compatible",
            "WATTFARE_UPSTREAM_URL": self.base_url,
            "WATTFARE_UPSTREAM_KEY": upstream_key,
            "WATTFARE_TEST_UPSTREAM": "live",
        }


@contextmanager
def run_standin(
    *,
    slow_delay: float = 0.2,
    timeout_delay: float = 30.0,
    premium_delay: float = 0.05,
    keep_alive_seconds: int = KEEP_ALIVE_SECONDS,
    backlog: int = BACKLOG,
    startup_timeout: float = 15.0,
) -> Iterator[StandIn]:
    """Start the stand-in as a subprocess on a free loopback port; stop it (by its PID) on exit.

    Args:
        slow_delay: seconds between tokens of `standin/slow`.
        timeout_delay: seconds `standin/timeout` waits before answering.
        premium_delay: seconds between tokens of `standin/premium`.
        keep_alive_seconds: how long an idle connection is kept open.
        backlog: connections waiting to be accepted (a storm of new connections needs more than the default).
        startup_timeout: seconds to wait for the process to listen.
    """
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        port_file, log = Path(tmp, "port"), Path(tmp, "standin.log")
        options = {
            "--port-file": port_file,
            "--slow-delay": slow_delay,
            "--timeout-delay": timeout_delay,
            "--premium-delay": premium_delay,
            "--keep-alive": keep_alive_seconds,
            "--backlog": backlog,
        }
        command = [sys.executable, "-m", "tests.support.standin_upstream"]
        command += [part for option, value in options.items() for part in (option, str(value))]
        with log.open("wb") as log_stream:
            process = subprocess.Popen(command, stdout=log_stream, stderr=subprocess.STDOUT, cwd=_REPO)
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


async def _serve(server: StandinServer, port: int, port_file: Path | None, keep_alive: int, backlog: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        server.app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=keep_alive,
        backlog=backlog,
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
    """Run the stand-in until interrupted: `python -m tests.support.standin_upstream --port-file F`."""
    parser = argparse.ArgumentParser(description="A stand-in OpenAI-compatible upstream (and OpenRouter OAuth).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--slow-delay", type=float, default=0.2)
    parser.add_argument("--timeout-delay", type=float, default=30.0)
    parser.add_argument("--premium-delay", type=float, default=0.05)
    parser.add_argument("--keep-alive", type=int, default=KEEP_ALIVE_SECONDS)
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    args = parser.parse_args(argv)
    server = StandinServer(
        slow_delay=args.slow_delay, timeout_delay=args.timeout_delay, premium_delay=args.premium_delay
    )
    asyncio.run(_serve(server, args.port, args.port_file, args.keep_alive, args.backlog))

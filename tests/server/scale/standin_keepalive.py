"""The stand-in upstream (`tests.support.standin_upstream`), served with a long HTTP keep-alive.

uvicorn closes idle connections after 5 s by default, while Wattfare's upstream client keeps them for
30 s: a request sent on a connection at the very moment the stand-in closes it fails with a `ReadError`
(a 502 to the client, nothing charged). That race belongs to the upstream hop, not to the store these
tests attack, and one in a few thousand storm requests hits it; served with a keep-alive longer than the
client's, the stand-in never closes a connection the client may still reuse. Run as
`python -m tests.server.scale.standin_keepalive --port-file F`, or `with run_standin_keepalive() as standin:`.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from tests.support.standin_upstream import StandIn, StandinServer

_REPO = Path(__file__).resolve().parents[3]  # where `tests` is importable from
KEEP_ALIVE_SECONDS = 120  # longer than Wattfare's 30 s keepalive_expiry
SLOW_DELAY = 0.2
TIMEOUT_DELAY = 5.0


async def _serve(port_file: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = StandinServer(slow_delay=SLOW_DELAY, timeout_delay=TIMEOUT_DELAY)
    config = uvicorn.Config(
        server.app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        backlog=4096,
    )
    uvicorn_server = uvicorn.Server(config)
    serving = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))
    while not uvicorn_server.started and not serving.done():
        await asyncio.sleep(0.01)
    if uvicorn_server.started:
        partial = port_file.with_suffix(".partial")
        partial.write_text(str(sock.getsockname()[1]))
        os.replace(partial, port_file)  # whole, so the waiting test never reads half a number
    await serving


@contextmanager
def run_standin_keepalive(startup_timeout: float = 30.0) -> Iterator[StandIn]:
    """Start the stand-in as a subprocess on a free loopback port; stop it (by its PID) on exit."""
    with tempfile.TemporaryDirectory(prefix="standin-scale-") as tmp:
        port_file, log = Path(tmp, "port"), Path(tmp, "standin.log")
        command = [sys.executable, "-m", "tests.server.scale.standin_keepalive", "--port-file", str(port_file)]
        with log.open("wb") as log_stream:
            process = subprocess.Popen(command, stdout=log_stream, stderr=subprocess.STDOUT, cwd=_REPO)
        try:
            deadline = time.monotonic() + startup_timeout
            while not port_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the stand-in did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.02)
            port = int(port_file.read_text())
            yield StandIn(base_url=f"http://127.0.0.1:{port}/v1", port=port, pid=process.pid, log=log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-file", type=Path, required=True)
    asyncio.run(_serve(parser.parse_args().port_file))


if __name__ == "__main__":
    main()

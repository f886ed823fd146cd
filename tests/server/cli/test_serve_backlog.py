"""`wattfare serve` listens with a deep accept queue: thousands of clients may connect in the same second."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.wattfare_server import wattfare_process


def _listen_backlog(port: int) -> int:
    """The accept queue's length of the socket listening on `port` (`ss` shows it as Send-Q)."""
    lines = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(lines) == 1, lines
    return int(lines[0].split()[2])


def test_the_accept_queue_is_as_deep_as_the_kernel_allows(tmp_path: Path) -> None:
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    with wattfare_process(tmp_path) as server:
        # uvicorn's own default is 2,048; `--backlog` defaults to 8,192, which the kernel caps at somaxconn.
        assert _listen_backlog(server.port) == min(8192, somaxconn)

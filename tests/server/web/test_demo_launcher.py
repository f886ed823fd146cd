"""`make dev`'s launcher (examples/demo_app/run.py): both servers up, both URLs printed, both stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.web.servers import REPO, clean_env
from tests.support.wattfare_server import free_port


def test_the_launcher_starts_wattfare_and_the_demo_prints_both_urls_and_stops_both(tmp_path: Path) -> None:
    wattfare_port, demo_port = free_port(), free_port()
    command = [sys.executable, str(REPO / "examples" / "demo_app" / "run.py")]
    command += ["--wattfare-port", str(wattfare_port), "--demo-port", str(demo_port)]
    log = tmp_path / "launcher.log"
    with log.open("w") as out:
        launcher = subprocess.Popen(command, cwd=tmp_path, env=clean_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in log.read_text():
            assert launcher.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        printed = log.read_text()
        assert f"Wattfare   http://127.0.0.1:{wattfare_port}" in printed
        assert f"Demo app   http://127.0.0.1:{demo_port}" in printed
        page = httpx.get(f"http://127.0.0.1:{demo_port}/")
        assert page.status_code == 200
        assert "pk_live_" in page.text  # live keys: Connect opens the consent popup
        assert f"http://127.0.0.1:{wattfare_port}/wattfare.js" in page.text
        assert httpx.get(f"http://127.0.0.1:{wattfare_port}/wattfare.js").status_code == 200
        assert (tmp_path / ".wattfare" / "demo.env").exists()
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(20)
    for port in (wattfare_port, demo_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            stopped = False
        except httpx.TransportError:
            stopped = True
        assert stopped, f"port {port} still answers"

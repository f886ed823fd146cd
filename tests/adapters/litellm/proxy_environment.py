"""The LiteLLM proxy as the tests run it: its own virtualenv (`.venv-litellm-proxy/`) and a process on a free port.

The proxy's dependencies conflict with the shared .venv's pins, so it runs from a venv of its own,
created on first use and rebuilt whenever `proxy_requirements.txt` changes. Installing needs the package
index; where that fails, the proxy tests are skipped with the installer's last words.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.wattfare_server import free_port

REPO = Path(__file__).resolve().parents[3]
VENV = REPO / ".venv-litellm-proxy"
REQUIREMENTS = Path(__file__).with_name("proxy_requirements.txt")
INSTALL_TIMEOUT_SECONDS = 900
# wattfare-core and wattfare-litellm come from the work tree.
SOURCES = [REPO / "packages" / "wattfare-core" / "src", REPO / "packages" / "wattfare-litellm" / "src"]


def _install(stamp: Path, digest: str) -> None:
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [
            str(VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing the LiteLLM proxy's dependencies took over {INSTALL_TIMEOUT_SECONDS} s")
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            pytest.skip(f"cannot install the LiteLLM proxy's dependencies ({REQUIREMENTS.name}) here:\n{tail}")
    stamp.write_text(digest)


def litellm_cli() -> Path:
    """The proxy venv's `litellm` command, (re)creating the venv when its pins changed; skips if that is impossible."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".requirements-sha256"
    cli = VENV / "bin" / "litellm"
    lock_path = (
        Path(tempfile.gettempdir()) / f"wattfare-litellm-proxy-venv-{hashlib.sha256(bytes(REPO)).hexdigest()[:12]}.lock"
    )
    with lock_path.open("w") as lock:
        # Two test processes must not build the same venv at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cli.exists() and stamp.exists() and stamp.read_text() == digest):
            _install(stamp, digest)
    return cli


@dataclass
class Proxy:
    """A running LiteLLM proxy, and a stock `openai` client holding its master key."""

    base_url: str
    log_path: Path
    client: openai.OpenAI


@contextmanager
def run_proxy(config: Path, workdir: Path, env: Mapping[str, str]) -> Iterator[Proxy]:
    """Start `litellm --config config` on a free loopback port (skipping if its venv cannot be built); stop it by PID.

    Args:
        config: The proxy's `config.yaml`.
        workdir: Its working directory, home and log directory.
        env: More environment (what the config's `os.environ/…` values name).
    """
    cli = litellm_cli()
    port = free_port()
    master_key = f"sk-{secrets.token_hex(24)}"
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "PYTHONPATH": os.pathsep.join(str(path) for path in SOURCES),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": master_key,
        **env,
    }
    log_path = workdir / "proxy.log"
    command = [str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"the LiteLLM proxy exited early:\n{log_path.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(f"{base_url}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the LiteLLM proxy did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.25)
        with openai.OpenAI(base_url=base_url, api_key=master_key, max_retries=0) as client:
            yield Proxy(base_url, log_path, client)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

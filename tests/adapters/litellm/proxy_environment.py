"""The LiteLLM proxy's own virtualenv (`.venv-litellm-proxy/`), created on first use from pinned requirements.

The proxy's dependencies conflict with the shared .venv's pins, so it runs from a venv of its own,
rebuilt whenever `proxy_requirements.txt` changes. Installing needs the package index; where that
fails, the proxy tests are skipped with the installer's last words.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
VENV = REPO / ".venv-litellm-proxy"
REQUIREMENTS = Path(__file__).with_name("proxy_requirements.txt")
INSTALL_TIMEOUT_SECONDS = 900


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

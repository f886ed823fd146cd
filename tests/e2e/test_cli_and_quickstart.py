"""A newcomer's path, for real: `wattfare dev`, the printed keys, the README quickstart, the other commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.wattfare_server import free_port
from wattfare.server.store.migrations import MIGRATIONS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("cli")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_"))}
    return env | extra


def _wattfare(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattfare.server.cli.main", *args],
        cwd=cwd,
        env=env or _clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _start_dev(cwd: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "wattfare.server.cli.main", "dev", "--port", str(port)],
        cwd=cwd,
        env=_clean_env(COLUMNS="200"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"wattfare dev did not start: {process.communicate()[0]}")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def test_wattfare_dev_prints_working_keys_and_the_quickstart_runs_against_it(tmp_path: Path) -> None:
    port = free_port()
    dev = _start_dev(tmp_path, port)
    try:
        env_file = tmp_path / ".wattfare" / "dev.env"
        keys = _read_env(env_file)
        assert keys["WATTFARE_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert keys["WATTFARE_SECRET_KEY"].startswith("sk_test_")
        assert keys["WATTFARE_PUBLISHABLE_KEY"].startswith("pk_test_")
        quickstart = subprocess.run(
            [sys.executable, str(REPO / "examples" / "quickstart.py")],
            env=_clean_env(**keys),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert quickstart.returncode == 0, quickstart.stderr
        lines = quickstart.stdout.strip().splitlines()
        assert lines[0].startswith("Sandbox reply to: Say hi")
        assert lines[1].startswith("cost $0.0000")
        assert "left $0.000" in lines[1]
        assert lines[-1].startswith("cap reached; resets at ")
        readme_snippet = (REPO / "README.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
        from_readme = subprocess.run(
            [sys.executable, "-c", readme_snippet],
            env=_clean_env(**keys),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert from_readme.returncode == 0, from_readme.stderr
        assert from_readme.stdout.startswith("Sandbox reply to: Say hi")
        assert "cap reached until 20" in from_readme.stdout
    finally:
        output = _stop(dev)
    assert keys["WATTFARE_SECRET_KEY"] in output  # the banner shows the key to copy

    # A second start reuses the same app and keys instead of minting new ones.
    again = _start_dev(tmp_path, port)
    try:
        assert _read_env(tmp_path / ".wattfare" / "dev.env")["WATTFARE_SECRET_KEY"] == keys["WATTFARE_SECRET_KEY"]
        status = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/status",
            params={"appUserId": "nobody"},
            headers={"Authorization": f"Bearer {keys['WATTFARE_SECRET_KEY']}"},
        )
        assert status.status_code == 200
        assert status.json()["connected"] is False
    finally:
        _stop(again)


def test_apps_create_prints_keys_once_and_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    env = _clean_env(WATTFARE_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}", COLUMNS="250")
    first = _wattfare("db", "upgrade", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert f"Applied migrations {[version for version, _ in MIGRATIONS]}" in first.stdout
    second = _wattfare("db", "upgrade", cwd=tmp_path, env=env)
    assert "up to date" in second.stdout
    created = _wattfare("apps", "create", "Acme", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("sk_test_") == 1
    assert created.stdout.count("sk_live_") == 1
    assert "not shown again" in created.stdout
    database = (tmp_path / "w.db").read_bytes()
    secret = next(word for word in created.stdout.split() if word.startswith("sk_live_"))
    assert secret.encode() not in database

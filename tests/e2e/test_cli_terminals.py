"""Keys come out whole from real `wattfare` processes: in terminals 40, 80 and 120 columns wide, and piped.

Each run gets a pseudo-terminal of the given size (no COLUMNS variable: the width comes from the terminal, as
for a person), and every key it prints must be the key the database knows, or the API accepts, character for
character. `wattfare dev` on a busy port must fail before it prints (or mints) any key.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.cli import PUBLISHABLE_KEY, SECRET_KEY
from tests.support.wattfare_server import free_port
from wattfare.server.access.keys import hash_key
from wattfare.server.store import open_store

pytestmark = pytest.mark.xdist_group("cli")
WIDTHS = [40, 80, 120]
COMMAND = [sys.executable, "-m", "wattfare.server.cli.main"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_"))}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    return env | {"TERM": "xterm-256color"} | extra


def in_terminal(
    args: list[str], *, columns: int, cwd: Path, env: dict[str, str], done: Callable[[str], bool] | None = None
) -> str:
    """Run `args` with a pseudo-terminal `columns` wide as stdin/stdout/stderr; return all it printed.

    With `done`, the process is interrupted (SIGINT, by its PID) as soon as `done(output so far)` holds.
    """
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(args, stdin=secondary, stdout=secondary, stderr=secondary, cwd=cwd, env=env)
    os.close(secondary)
    received = b""
    deadline = time.monotonic() + 60
    interrupted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: every copy of the terminal's other end is closed
                    break
                if not chunk:
                    break
                received += chunk
            if done is not None and not interrupted and done(received.decode(errors="replace")):
                process.send_signal(signal.SIGINT)
                interrupted = True
        else:
            raise AssertionError(f"{args} did not finish: {received.decode(errors='replace')}")
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    return received.decode()


def piped(args: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    finished = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True, timeout=60, check=True)
    return finished.stdout


def secret_keys_known(database_url: str, keys: list[str]) -> list[bool]:
    async def lookup() -> list[bool]:
        store = open_store(database_url)
        try:
            return [await store.find_secret_key(hash_key(key)) is not None for key in keys]
        finally:
            await store.close()

    return asyncio.run(lookup())


def test_the_harness_really_gives_the_process_a_terminal_of_that_width(tmp_path: Path) -> None:
    script = "import shutil, sys; print(sys.stdout.isatty(), shutil.get_terminal_size().columns)"
    output = in_terminal([sys.executable, "-c", script], columns=40, cwd=tmp_path, env=_env())

    assert output.split() == ["True", "40"]


@pytest.mark.parametrize("columns", [*WIDTHS, None], ids=[*(f"{w} columns" for w in WIDTHS), "piped"])
def test_apps_create_prints_every_key_whole_and_each_printed_secret_key_works(
    tmp_path: Path, columns: int | None
) -> None:
    database_url = f"sqlite:///{tmp_path / 'w.db'}"
    args = [*COMMAND, "apps", "create", "A fairly long application name, for a wide table"]
    env = _env(WATTFARE_DATABASE_URL=database_url)

    output = (
        piped(args, cwd=tmp_path, env=env)
        if columns is None
        else in_terminal(args, columns=columns, cwd=tmp_path, env=env)
    )

    text = ANSI.sub("", output)
    secrets, publishable = SECRET_KEY.findall(text), PUBLISHABLE_KEY.findall(text)
    assert "…" not in text
    assert sorted(key[:8] for key in secrets) == ["sk_live_", "sk_test_"]
    assert sorted(key[:8] for key in publishable) == ["pk_live_", "pk_test_"]
    assert secret_keys_known(database_url, secrets) == [True, True]
    for key in secrets + publishable:
        assert re.search(rf"(^|\n){re.escape(key)}\r?\n", text), key  # a line of its own
    if columns is None:
        assert "\x1b[" not in output  # no terminal, no styling


def _dev_env(cwd: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (cwd / ".wattfare" / "dev.env").read_text().splitlines())


@pytest.mark.parametrize("columns", [*WIDTHS, None], ids=[*(f"{w} columns" for w in WIDTHS), "piped"])
def test_the_dev_banner_prints_the_dev_keys_whole_and_they_work(tmp_path: Path, columns: int | None) -> None:
    port = free_port()
    args = [*COMMAND, "dev", "--port", str(port)]
    api = f"http://127.0.0.1:{port}/api/v1"
    seen: list[int] = []

    def ready(output: str) -> bool:
        # Once the banner is out and the server answers, check a key against it, then stop.
        if not re.search(r"pk_test_\S+\r?\n", ANSI.sub("", output)):
            return False
        try:
            key = _dev_env(tmp_path)["WATTFARE_SECRET_KEY"]
            seen.append(httpx.get(f"{api}/status", params={"appUserId": "u1"}, headers=_bearer(key)).status_code)
        except (httpx.TransportError, FileNotFoundError, KeyError):
            return False
        return True

    if columns is None:
        output = _dev_piped(args, tmp_path, ready)
    else:
        output = in_terminal(args, columns=columns, cwd=tmp_path, env=_env(), done=ready)

    keys = _dev_env(tmp_path)
    text = ANSI.sub("", output)
    assert seen == [200]  # the key the banner shows is the one the running server accepts
    assert SECRET_KEY.findall(text) == [keys["WATTFARE_SECRET_KEY"]]
    assert PUBLISHABLE_KEY.findall(text) == [keys["WATTFARE_PUBLISHABLE_KEY"]]
    assert "…" not in text


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _dev_piped(args: list[str], cwd: Path, ready: Callable[[str], bool]) -> str:
    process = subprocess.Popen(args, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    received = b""
    deadline = time.monotonic() + 60
    try:
        while not ready(received.decode(errors="replace")):
            assert time.monotonic() < deadline, received.decode(errors="replace")
            if select.select([process.stdout], [], [], 0.2)[0]:
                received += os.read(process.stdout.fileno(), 65536)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return (received + rest).decode()


def test_wattfare_dev_on_a_busy_port_fails_in_one_line_before_minting_or_printing_keys(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        finished = subprocess.run(
            [*COMMAND, "dev", "--port", str(port)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert finished.returncode == 1
    assert finished.stdout == ""
    assert finished.stderr.splitlines() == [
        f"Error: port {port} on 127.0.0.1 is already in use: stop what runs there, or pick another with --port"
    ]
    assert not (tmp_path / ".wattfare").exists()  # no database, no app, no key file

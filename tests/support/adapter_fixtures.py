"""The body of the adapter folders' conftests, written once: their servers, their cassettes, no network.

`tests/adapters/{langchain,llamaindex,litellm}/conftest.py` import the fixtures they use from here, under the
names their tests request. A fixture imported into a conftest is registered for that folder: two folders that
import `adapter_server` get a server each (as they did when each conftest defined its own), so no adapter's
tests see another's users, caps or ledger.

Two kinds of server, each one `wattfare serve` process per test session (per xdist worker):

- `adapter_server`: test mode on the sandbox upstream; with `WATTFARE_LIVE=1` and a provider key in
  `WATTFARE_UPSTREAM_KEY` / `OPENROUTER_API_KEY`, the real upstream (`live_env`);
- `sandbox_server`: the sandbox always (tests whose answers depend on its canned models).

Replay tests read cassettes (`cassette_vcr`): they never reach a server, a request the cassette does not hold
fails, and `WATTFARE_RECORD=1` re-records them against `recording_server`, scrubbed of anything that names the
server, the app or its keys.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import vcr  # pyright: ignore[reportMissingTypeStubs]
from vcr.record_mode import RecordMode  # pyright: ignore[reportMissingTypeStubs]
from vcr.request import Request  # pyright: ignore[reportMissingTypeStubs]

from tests.support.wattfare_server import ServerProcess, wattfare_process

RECORDING = bool(os.environ.get("WATTFARE_RECORD"))
LIVE = bool(os.environ.get("WATTFARE_LIVE"))
MODEL = "openai/gpt-4o-mini"  # the model the cassettes were recorded with
# Replayed requests go here; matching ignores the host, so recordings made on any port replay.
REPLAY_NETLOC = "127.0.0.1:8787"
REPLAY_BASE_URL = f"http://{REPLAY_NETLOC}"
REPLAY_SECRET = "sk_test_replayed"


def mark_folder(items: list[pytest.Item], folder: Path, *marks: pytest.MarkDecorator) -> None:
    """Add `marks` to the collected tests under `folder` (a conftest's collection hook sees the whole session)."""
    for item in items:
        if item.path.is_relative_to(folder):
            for mark in marks:
                item.add_marker(mark)


# ---------------------------------------------------------------- servers


def live_env() -> dict[str, str]:
    """The server environment for `WATTFARE_LIVE=1` (a real upstream), else nothing (the sandbox)."""
    if not LIVE:
        return {}
    key = os.environ.get("WATTFARE_UPSTREAM_KEY") or os.environ.get("OPENROUTER_API_KEY")
    if not key:
        pytest.fail("WATTFARE_LIVE=1 needs a provider key in WATTFARE_UPSTREAM_KEY or OPENROUTER_API_KEY")
    env = {"WATTFARE_TEST_UPSTREAM": "live", "WATTFARE_UPSTREAM_KEY": key}
    if url := os.environ.get("WATTFARE_UPSTREAM_URL"):
        env["WATTFARE_UPSTREAM_URL"] = url
    return env


@pytest.fixture(scope="session")
def adapter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `wattfare serve` process in test mode: the sandbox, or with `WATTFARE_LIVE=1` the real upstream."""
    with wattfare_process(tmp_path_factory.mktemp("wattfare-adapter"), env=live_env()) as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `wattfare serve` process in test mode on the sandbox upstream, whatever `WATTFARE_LIVE` says."""
    with wattfare_process(tmp_path_factory.mktemp("wattfare-sandbox")) as server:
        yield server


@pytest.fixture(scope="session")
def recording_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | None]:
    """The server cassettes are recorded against, or None when replaying."""
    if not RECORDING:
        yield None
        return
    with wattfare_process(tmp_path_factory.mktemp("wattfare-recording")) as server:
        yield server


# ---------------------------------------------------------------- cassettes


def _scrub_request(request: Request) -> Request:
    # Nothing that identifies the server or the app is kept: no key, no host or port, no client version.
    request.uri = urlunsplit(urlsplit(request.uri)._replace(netloc=REPLAY_NETLOC))
    request.headers = {k: v for k, v in request.headers.items() if k.lower() in ("wattfare-user", "content-type")}
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    keep = ("content-type", "wattfare-cost-usd", "wattfare-remaining-usd", "wattfare-request-id", "x-should-retry")
    response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() in keep}
    response["body"]["string"] = _trim_model_list(response["body"]["string"])
    return response


def _trim_model_list(body: bytes | str) -> bytes | str:
    # GET /models lists ~500 models (150 kB); the tests use one, so a recording keeps only that one.
    if not (body.encode() if isinstance(body, str) else body).startswith(b'{"object":"list"'):
        return body
    listing = json.loads(body)
    listing["data"] = [model for model in listing["data"] if model.get("id") == MODEL]
    return json.dumps(listing).encode()


def _same_end_user(r1: Request, r2: Request) -> None:
    # Who pays is part of the request: a recording for one user must not answer for another.
    assert r1.headers.get("wattfare-user") == r2.headers.get("wattfare-user")


def recording_options() -> dict[str, Any]:
    """vcrpy options every cassette shares: record only on demand, and keep no key, host, port or client version."""
    return {
        "record_mode": RecordMode.ALL if RECORDING else RecordMode.NONE,
        "filter_headers": ["authorization"],
        "before_record_request": _scrub_request,
        "before_record_response": _scrub_response,
        "decode_compressed_response": True,
    }


def cassette_vcr() -> vcr.VCR:
    """A VCR that matches on method, path, body and end user (never the host or port), recording only on demand."""
    recorder = vcr.VCR(match_on=["method", "path", "query", "body", "wattfare_user"], **recording_options())
    recorder.register_matcher("wattfare_user", _same_end_user)
    return recorder


def missing_cassette(path: Path, make_target: str) -> None:
    """Fail a replay whose cassette was never recorded (never record it silently in a normal run)."""
    if not RECORDING and not path.exists():
        pytest.fail(f"missing cassette {path.name}: record it with WATTFARE_RECORD=1 (make {make_target})")


# ---------------------------------------------------------------- no network but loopback


def _is_local(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network_but_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any connection to or name lookup of a host beyond this machine fails the test that made it.

    The attempt raises `OSError`, as being offline would, and is remembered: a library that swallows the error
    and carries on (a tokenizer or price-map download with a fallback) still fails the test afterwards.
    """
    attempts: list[str] = []
    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def refuse(what: str) -> OSError:
        attempts.append(what)
        return OSError(f"a test tried to reach {what}: only loopback is allowed")

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise refuse(repr(address))

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local(name):
            raise refuse(repr(name))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert not attempts, f"tried to reach the network: {attempts}"

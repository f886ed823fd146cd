"""Fixtures for WattfareLLM's tests: cassettes of traffic with a real server, a real server, no other network.

Replay tests (`wattfare_target`) read `cassettes/<test name>.yaml`: they never reach a server, a request
the cassette does not hold fails, and so does one it holds but nobody sent. `WATTFARE_RECORD=1`
re-records them against a fresh `wattfare serve` process (`make record-llamaindex`).

Agent tests (`llamaindex_server`) talk to one `wattfare serve` process in test mode (sandbox upstream);
with `WATTFARE_LIVE=1` and a provider key in `WATTFARE_UPSTREAM_KEY` / `OPENROUTER_API_KEY`, to the real one.

Every test here runs with the network closed except loopback: LlamaIndex must not fetch tokenizer data
(it ships tiktoken's encodings in `llama_index/core/_static`), and neither must we.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import vcr  # pyright: ignore[reportMissingTypeStubs]
from vcr.cassette import Cassette  # pyright: ignore[reportMissingTypeStubs]
from vcr.record_mode import RecordMode  # pyright: ignore[reportMissingTypeStubs]
from vcr.request import Request  # pyright: ignore[reportMissingTypeStubs]

from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare import Wattfare
from wattfare_llamaindex import WattfareLLM

HERE = Path(__file__).parent
CASSETTES = HERE / "cassettes"
RECORDING = bool(os.environ.get("WATTFARE_RECORD"))
LIVE = bool(os.environ.get("WATTFARE_LIVE"))
# Cassettes are stored, and replayed, against this URL whatever port they were recorded on.
REPLAY_BASE_URL = "http://127.0.0.1:8787"
REPLAY_SECRET = "sk_test_replayed"
MODEL = "openai/gpt-4o-mini"

# Third-party deprecations we cannot fix, each named exactly. llama-index-workflows builds an agent's steps
# with `inspect.getmembers(agent)`, which touches pydantic's deprecated attributes; LlamaIndex's own
# ReActAgent still asks `ctx.is_running` inside its step.
THIRD_PARTY_WARNINGS = (
    "ignore:The `__fields__` attribute is deprecated:pydantic.warnings.PydanticDeprecatedSince20",
    "ignore:The `__fields_set__` attribute is deprecated:pydantic.warnings.PydanticDeprecatedSince20",
    "ignore:Accessing the 'model_computed_fields' attribute on the instance:"
    "pydantic.warnings.PydanticDeprecatedSince211",
    "ignore:Accessing the 'model_fields' attribute on the instance:pydantic.warnings.PydanticDeprecatedSince211",
    "ignore:is_running called from within a step:DeprecationWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session: only this directory's tests get the filters.
    for item in items:
        if item.path.is_relative_to(HERE):
            for spec in THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


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
def no_network_but_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup beyond this machine fails the test that made it."""
    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise AssertionError(f"a test tried to reach {address!r}: only loopback is allowed")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_local(host.decode() if isinstance(host, bytes) else host):
            raise AssertionError(f"a test tried to look up {host!r}: only loopback is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# ---------------------------------------------------------------- a real server


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
def llamaindex_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `wattfare serve` process for the session (per xdist worker: keep its tests in one xdist group)."""
    with wattfare_process(tmp_path_factory.mktemp("wattfare-llamaindex"), env=live_env()) as server:
        yield server


# ---------------------------------------------------------------- cassettes


def _scrub_request(request: Request) -> Request:
    # Nothing that identifies the server or the app is kept: no key, no host or port, no client version.
    request.uri = REPLAY_BASE_URL + request.uri[request.uri.index("/api/v1") :]
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


@pytest.fixture(scope="session")
def recording_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | None]:
    """The server cassettes are recorded against, or None when replaying."""
    if not RECORDING:
        yield None
        return
    with wattfare_process(tmp_path_factory.mktemp("wattfare-llamaindex-recording")) as server:
        yield server


@dataclass
class Target:
    """Where a replay test sends its requests, and the cassette that answers them.

    Attributes:
        base_url: The Wattfare server (the fixed replay URL, or the recording server).
        secret_key: Its secret key (a placeholder when replaying: the cassette holds no key).
        cassette: The vcrpy cassette; `requests` are what was sent, as recorded.
    """

    base_url: str
    secret_key: str
    cassette: Cassette
    _opened: list[WattfareLLM] = field(default_factory=list[WattfareLLM])
    _clients: list[Wattfare] = field(default_factory=list[Wattfare])

    def llm(self, user_id: str, **kwargs: Any) -> WattfareLLM:
        """A `WattfareLLM` on `MODEL` for `user_id`, sending to this target; closed after the test."""
        llm = WattfareLLM(
            model=kwargs.pop("model", MODEL),
            user_id=user_id,
            secret_key=kwargs.pop("secret_key", self.secret_key),
            base_url=self.base_url,
            **kwargs,
        )
        self._opened.append(llm)
        return llm

    def wattfare(self) -> Wattfare:
        """A core SDK client on this target (sessions, disconnects), closed after the test."""
        client = Wattfare(self.secret_key, self.base_url)
        self._clients.append(client)
        return client

    @property
    def exchanges(self) -> int:
        """Requests answered so far: replayed ones, or (recording) recorded ones."""
        return len(self.cassette) if RECORDING else self.cassette.play_count

    def sent(self, index: int = -1) -> Request:
        """A recorded request, in sending order."""
        return self.cassette.requests[index]

    def close(self) -> None:
        """Close every sync pool opened through this target (async tests close their own loop's)."""
        for llm in self._opened:
            llm.close()
        for client in self._clients:
            client.close()


@pytest.fixture
def wattfare_target(request: pytest.FixtureRequest, recording_server: ServerProcess | None) -> Iterator[Target]:
    """Plays `cassettes/<test name>.yaml` (or, with `WATTFARE_RECORD=1`, records it) around the test."""
    name = request.node.name.replace("[", "-").replace("]", "")
    path = CASSETTES / f"{name}.yaml"
    if RECORDING:
        path.unlink(missing_ok=True)
    elif not path.exists():
        pytest.fail(f"missing cassette {path.name}: record it with WATTFARE_RECORD=1 (make record-llamaindex)")
    recorder = vcr.VCR(
        record_mode=RecordMode.ALL if RECORDING else RecordMode.NONE,
        match_on=["method", "path", "query", "body", "wattfare_user"],
        filter_headers=["authorization"],
        before_record_request=_scrub_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("wattfare_user", _same_end_user)
    with recorder.use_cassette(str(path)) as cassette:
        if recording_server is None:
            target = Target(REPLAY_BASE_URL, REPLAY_SECRET, cassette)
        else:
            target = Target(recording_server.base_url, recording_server.secret, cassette)
        try:
            yield target
        finally:
            target.close()
    if not RECORDING:
        # A recorded request nobody sent means the adapter's traffic changed: re-record, and review the diff.
        assert cassette.all_played, f"{path.name}: {len(cassette) - cassette.play_count} recorded request(s) unsent"

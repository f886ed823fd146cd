"""Fixtures for ChatWattfare's tests: a real Wattfare server, and cassettes of traffic with one.

Tests marked `needs_server` talk to a `wattfare serve` process in test mode (sandbox upstream; with
`WATTFARE_LIVE=1` and a provider key in `OPENROUTER_API_KEY` / `WATTFARE_UPSTREAM_KEY`, the real
upstream). Replay tests read `cassettes/`: they never reach a server, and a request the cassette does
not hold fails. `WATTFARE_RECORD=1` re-records every cassette against a fresh server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import vcr  # pyright: ignore[reportMissingTypeStubs]
from vcr.record_mode import RecordMode  # pyright: ignore[reportMissingTypeStubs]
from vcr.request import Request  # pyright: ignore[reportMissingTypeStubs]

from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare import Wattfare
from wattfare_langchain import ChatWattfare

HERE = Path(__file__).resolve().parent
CASSETTES = HERE / "cassettes"
RECORDING = bool(os.environ.get("WATTFARE_RECORD"))
LIVE = bool(os.environ.get("WATTFARE_LIVE"))
# Replayed requests go here; matching ignores the host, so recordings made on any port replay.
REPLAY_NETLOC = "127.0.0.1:8787"
REPLAY_BASE_URL = f"http://{REPLAY_NETLOC}"
REPLAY_SECRET = "sk_test_replayed"
MODEL = "openai/gpt-4o-mini"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The standard suites cannot be edited: a module lists the tests a sandbox cannot pass, with why.
    # (A conftest's collection hook sees the whole session: only this directory's tests are touched.)
    for item in items:
        if HERE not in item.path.parents:
            continue
        reasons: dict[str, str] = getattr(getattr(item, "module", None), "NEEDS_A_REAL_MODEL", {})
        name = getattr(item, "originalname", item.name)
        if name in reasons:
            item.add_marker(pytest.mark.skipif(not LIVE, reason=reasons[name]))
        if name == "test_stream_time":
            # Recording runs the stream once, outside the benchmark; pytest-benchmark warns about that.
            item.add_marker(pytest.mark.filterwarnings(_UNUSED_BENCHMARK))


_UNUSED_BENCHMARK = "ignore:Benchmark fixture was not used at all:pytest_benchmark.logger.PytestBenchmarkWarning"


# ---------------------------------------------------------------- a real server


def _live_env() -> dict[str, str]:
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
def wattfare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `wattfare serve` process for the session (per xdist worker)."""
    with wattfare_process(tmp_path_factory.mktemp("wattfare-langchain"), env=_live_env()) as server:
        yield server


# ---------------------------------------------------------------- cassettes


def _scrub_request(request: Request) -> Request:
    # Nothing that identifies the server or the app is kept: no key, no port.
    request.uri = urlunsplit(urlsplit(request.uri)._replace(netloc=REPLAY_NETLOC))
    request.headers = {k: v for k, v in request.headers.items() if k.lower() in ("wattfare-user", "content-type")}
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    keep = ("content-type", "wattfare-cost-usd", "wattfare-remaining-usd", "wattfare-request-id", "x-should-retry")
    response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() in keep}
    return response


def _same_end_user(r1: Request, r2: Request) -> None:
    # Who pays is part of the request: a cassette recorded for one user must not answer for another.
    assert r1.headers.get("wattfare-user") == r2.headers.get("wattfare-user")


def cassette_vcr() -> vcr.VCR:
    """A VCR that matches on method, path, body and end user (never the host or port), recording only on demand."""
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        path_transformer=vcr.VCR.ensure_suffix(".yaml"),
        record_mode=RecordMode.ALL if RECORDING else RecordMode.NONE,
        match_on=["method", "path", "query", "body", "wattfare_user"],
        filter_headers=["authorization"],
        before_record_request=_scrub_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("wattfare_user", _same_end_user)
    return recorder


@pytest.fixture(scope="session")
def recording_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | None]:
    """The server cassettes are recorded against, or None when replaying."""
    if not RECORDING:
        yield None
        return
    with wattfare_process(tmp_path_factory.mktemp("wattfare-langchain-recording")) as server:
        yield server


@dataclass
class Recorded:
    """One cassette in use: where to point ChatWattfare, and what it sent."""

    base_url: str
    secret_key: str
    cassette: Any

    def llm(self, user_id: str, **params: Any) -> ChatWattfare:
        return ChatWattfare(model=MODEL, user_id=user_id, api_key=self.secret_key, base_url=self.base_url, **params)

    def wattfare(self) -> Wattfare:
        return Wattfare(self.secret_key, self.base_url, max_retries=0)

    def sent(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat completions sent (in replay: recorded, and every one was matched)."""
        return [json.loads(r.body) for r in self.cassette.requests if r.path.endswith("/chat/completions")]


Replay = Callable[[str], AbstractContextManager[Recorded]]


@pytest.fixture
def replay(recording_server: ServerProcess | None) -> Replay:
    """`with replay("name") as recorded:` plays (or, recording, records) `cassettes/name.yaml`.

    On replay, every recorded request must be matched by one the test sends, and nothing else may be sent.
    """

    @contextmanager
    def use(name: str) -> Iterator[Recorded]:
        path = CASSETTES / f"{name}.yaml"
        if not RECORDING and not path.exists():
            pytest.fail(f"missing cassette {path.name}: record it with WATTFARE_RECORD=1 (make record-langchain)")
        with cassette_vcr().use_cassette(name) as cassette:
            if recording_server is None:
                yield Recorded(REPLAY_BASE_URL, REPLAY_SECRET, cassette)
                assert cassette.all_played, f"{path.name}: the test no longer sends every recorded request"
            else:
                yield Recorded(recording_server.base_url, recording_server.secret, cassette)

    return use


# pytest-recording's fixtures, for the standard suite's `test_stream_time`.
@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "record_mode": "all" if RECORDING else "none",
        # The benchmark replays the one recorded stream many times.
        "allow_playback_repeats": True,
        "match_on": ["method", "path", "query", "body"],
        "filter_headers": ["authorization"],
        "before_record_request": _scrub_request,
        "before_record_response": _scrub_response,
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)

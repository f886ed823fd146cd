"""Fixtures for ChatWattfare's tests: a real Wattfare server, and cassettes of traffic with one.

Tests marked `needs_server` talk to a `wattfare serve` process in test mode (sandbox upstream; with
`WATTFARE_LIVE=1` and a provider key in `OPENROUTER_API_KEY` / `WATTFARE_UPSTREAM_KEY`, the real
upstream). Replay tests read `cassettes/`: they never reach a server, and a request the cassette does
not hold fails. `WATTFARE_RECORD=1` re-records every cassette against a fresh server.

The servers and the cassettes' rules are every adapter's (tests/support/adapter_fixtures.py); what is
LangChain's alone is here: `replay`, and the standard suite's needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.adapter_fixtures import (
    LIVE,
    MODEL,
    REPLAY_BASE_URL,
    REPLAY_SECRET,
    cassette_vcr,
    missing_cassette,
    recording_options,
    recording_server,
)
from tests.support.adapter_fixtures import adapter_server as wattfare_server
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_langchain import ChatWattfare

__all__ = ["recording_server", "wattfare_server"]  # fixtures, registered here for this folder

HERE = Path(__file__).resolve().parent
CASSETTES = HERE / "cassettes"


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


@dataclass
class Recorded:
    """One cassette in use: where to point ChatWattfare, and what it sent."""

    base_url: str
    secret_key: str
    cassette: Any

    def llm(self, user_id: str, **params: Any) -> ChatWattfare:
        return ChatWattfare(
            model=MODEL, user_id=user_id, secret_key=SecretStr(self.secret_key), base_url=self.base_url, **params
        )

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
        missing_cassette(path, "record-langchain")
        with cassette_vcr().use_cassette(str(path)) as cassette:
            if recording_server is None:
                yield Recorded(REPLAY_BASE_URL, REPLAY_SECRET, cassette)
                assert cassette.all_played, f"{path.name}: the test no longer sends every recorded request"
            else:
                yield Recorded(recording_server.base_url, recording_server.secret, cassette)

    return use


# pytest-recording's fixtures, for the standard suite's `test_stream_time`.
@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    # The benchmark replays the one recorded stream many times.
    return recording_options() | {"allow_playback_repeats": True, "match_on": ["method", "path", "query", "body"]}


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)

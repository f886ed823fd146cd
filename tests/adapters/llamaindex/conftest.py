"""Fixtures for WattfareLLM's tests: cassettes of traffic with a real server, a real server, no other network.

Replay tests (`wattfare_target`) read `cassettes/<test name>.yaml`: they never reach a server, a request
the cassette does not hold fails, and so does one it holds but nobody sent. `WATTFARE_RECORD=1`
re-records them against a fresh `wattfare serve` process (`make record-llamaindex`).

Agent tests (`llamaindex_server`) talk to one `wattfare serve` process in test mode (sandbox upstream);
with `WATTFARE_LIVE=1` and a provider key in `WATTFARE_UPSTREAM_KEY` / `OPENROUTER_API_KEY`, to the real one.

Every test here runs with the network closed except loopback: LlamaIndex must not fetch tokenizer data
(it ships tiktoken's encodings in `llama_index/core/_static`), and neither must we.

The servers, the cassettes' rules and the network guard are every adapter's (tests/support/adapter_fixtures.py);
what is LlamaIndex's alone is here: `wattfare_target`, and the warnings its dependencies raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from vcr.cassette import Cassette  # pyright: ignore[reportMissingTypeStubs]
from vcr.request import Request  # pyright: ignore[reportMissingTypeStubs]

from tests.support.adapter_fixtures import (
    MODEL,
    RECORDING,
    REPLAY_BASE_URL,
    REPLAY_SECRET,
    cassette_vcr,
    mark_folder,
    missing_cassette,
    no_network_but_loopback,
    recording_server,
)
from tests.support.adapter_fixtures import adapter_server as llamaindex_server
from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare
from wattfare_llamaindex import WattfareLLM

__all__ = ["llamaindex_server", "no_network_but_loopback", "recording_server"]  # fixtures, registered for this folder

HERE = Path(__file__).parent
CASSETTES = HERE / "cassettes"

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
    mark_folder(items, HERE, *(pytest.mark.filterwarnings(spec) for spec in THIRD_PARTY_WARNINGS))


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
    missing_cassette(path, "record-llamaindex")
    with cassette_vcr().use_cassette(str(path)) as cassette:
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

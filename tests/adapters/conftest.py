"""Fixtures every adapter's tests may use: a Wattfare process whose model provider is the recording stand-in.

The stand-in (tests/support/standin_upstream) records what the provider received, so a test can assert
what an adapter let through Wattfare to it. One stand-in and one server per test session (per xdist worker).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.upstream import Upstream
from tests.support.standin_upstream import StandIn, run_standin
from tests.support.wattfare_server import ServerProcess, wattfare_process


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    with run_standin(timeout_delay=5.0) as running:
        yield running


@pytest.fixture(scope="session")
def standin_server(standin: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`wattfare serve` whose test keys are served by the stand-in (models `standin/…`)."""
    env = standin.upstream_env("provider-key")
    with wattfare_process(tmp_path_factory.mktemp("wattfare-standin"), env=env) as server:
        yield server


@pytest.fixture
def upstream(standin: StandIn) -> Upstream:
    """What the stand-in model provider received."""
    return Upstream(standin)

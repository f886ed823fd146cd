"""Fixtures shared by the process-level tests: one stand-in upstream per test session (per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.standin_upstream import StandIn, run_standin


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    # `standin/timeout` waits 5 s, well past the 1 s upstream timeout the fault tests set, and short
    # enough that the stand-in is not left holding requests for long.
    with run_standin(timeout_delay=5.0) as running:
        yield running


@pytest.fixture(scope="session")
def standin_env(standin: StandIn) -> dict[str, str]:
    """The environment that points a Wattfare process's test keys at the stand-in."""
    return standin.upstream_env()

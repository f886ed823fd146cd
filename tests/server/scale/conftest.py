"""Fixtures of the scale-out tests: one stand-in upstream, and three instances sharing one PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import postgres
from tests.support.standin_upstream import StandIn, run_standin
from tests.support.wattfare_server import Deployment, deployment_on


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    # A storm opens thousands of connections at once: a deeper accept queue than uvicorn's default. Its
    # `standin/timeout` answers after 5 s, so a fault test does not leave it holding requests for long.
    with run_standin(timeout_delay=5.0, backlog=4096, startup_timeout=30.0) as running:
        yield running


@pytest.fixture(scope="session")
def standin_env(standin: StandIn) -> dict[str, str]:
    """The environment that points a Wattfare process's test keys at the stand-in."""
    return standin.upstream_env()


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]) -> Iterator[Deployment]:
    """Three `wattfare serve` processes on one fresh PostgreSQL database, shared by the tests that only add to it.

    Each test uses its own app users, so tests sharing it cannot disturb each other's books.
    """
    with (
        postgres.fresh_database() as url,
        deployment_on(url, tmp_path_factory.mktemp("scale"), standin_env, 3) as running,
    ):
        yield running

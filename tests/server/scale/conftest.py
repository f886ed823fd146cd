"""Fixtures of the scale-out tests: one stand-in upstream, and three instances sharing one PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.scale.instances import Deployment, deployment_on
from tests.server.scale.standin_keepalive import run_standin_keepalive
from tests.support import postgres
from tests.support.standin_upstream import StandIn


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    with run_standin_keepalive() as running:
        yield running


@pytest.fixture(scope="session")
def standin_env(standin: StandIn) -> dict[str, str]:
    """The environment that points a Wattfare process's test keys at the stand-in."""
    return {
        "WATTFARE_UPSTREAM": "openai-compatible",
        "WATTFARE_UPSTREAM_URL": standin.base_url,
        "WATTFARE_UPSTREAM_KEY": "test-key",
        "WATTFARE_TEST_UPSTREAM": "live",
    }


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

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.support.standin_upstream import StandIn, run_standin
from wattfare.server.upstream.sandbox.models import SandboxUpstream

FIXED_TIME = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    with run_standin() as running:
        yield running


@pytest.fixture
def sandbox() -> SandboxUpstream:
    return SandboxUpstream(clock=lambda: FIXED_TIME)

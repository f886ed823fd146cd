from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support import postgres

# Property tests check correctness, never speed: on a shared, noisy machine a per-example deadline or a
# "generation is slow" health check fails a correct test (timing targets live in benchmarks/).
settings.register_profile("wattfare", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("wattfare")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


_postgres_up: bool | None = None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `postgres` need the server CI provides: skipped on a laptop without one, failed in CI."""
    global _postgres_up
    if item.get_closest_marker("postgres") is None:
        return
    if _postgres_up is None:
        _postgres_up = postgres.available()
    if not _postgres_up:
        message = f"PostgreSQL is not reachable at {postgres.admin_url()} (set WATTFARE_TEST_POSTGRES_URL)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres, wattfare_server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once on the embedded SQLite file and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wattfare.db'}"
    else:
        with postgres.fresh_database() as url:
            yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def each_store(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run the test's in-process servers once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield
        return
    with postgres.fresh_database() as url:
        wattfare_server.database_override = url
        try:
            yield
        finally:
            wattfare_server.database_override = None

"""Fixtures for the store tests that need PostgreSQL alone (the one-round-trip paths SQLite does not have)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from tests.support import postgres
from wattfare.server.store import open_store
from wattfare.server.store.postgres import PostgresStore

CREATED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (made and dropped outside the test's event loop)."""
    with postgres.fresh_database() as url:
        yield url


@pytest.fixture
async def postgres_store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    """A migrated store on a fresh PostgreSQL database, with app `app_a`: SQLite's writes cost no round trips."""
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    await store.upgrade()
    await store.create_app("app_a", "A", 10_000, CREATED)
    try:
        yield store
    finally:
        await store.close()

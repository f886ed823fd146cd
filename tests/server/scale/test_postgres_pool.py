"""The PostgreSQL store under load and at the server's limits, below HTTP: busy is not down, full is down.

A caller that finds every pooled connection busy waits for one (failing it would turn load into 503s,
and a failed settle leaves its hold to expire at the full reserved amount); a server out of connection
slots is an outage, answered like any other (`StoreUnavailableError`, 503), not an internal error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import pytest

from tests.support import postgres
from wattfare.server.store import StoreUnavailableError
from wattfare.server.store.postgres import PostgresStore

pytestmark = [pytest.mark.postgres, pytest.mark.anyio, pytest.mark.xdist_group("scale")]


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


@pytest.fixture
async def full_role_url(database_url: str) -> AsyncIterator[str]:
    """A URL logging in as a role allowed no connection at all: what a server out of slots answers."""
    role = f"wattfare_full_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url, timeout=10)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
        parts = urlsplit(database_url)
        yield urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
    finally:
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_a_caller_finding_the_pool_busy_waits_for_a_connection_instead_of_failing(database_url: str) -> None:
    # One connection, and a connect timeout (1 s) shorter than the time the only connection stays busy.
    store = PostgresStore(database_url, min_size=1, max_size=1, timeout=1.0)
    try:
        await store.upgrade()
        busy_for = 1.5
        answers: list[str | None] = []

        async def hog() -> None:
            async with store._tx() as db:  # pyright: ignore[reportPrivateUsage]
                await db.execute("SELECT pg_sleep($1)", busy_for)

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(hog)
            await anyio.sleep(0.2)
            answers.append(await store.get_secret("absent"))
        waited = time.monotonic() - started
    finally:
        await store.close()

    assert answers == [None]
    assert waited >= busy_for


async def test_a_database_out_of_connection_slots_is_unavailable_not_an_internal_error(full_role_url: str) -> None:
    store = PostgresStore(full_role_url, min_size=1, max_size=2)
    try:
        with pytest.raises(StoreUnavailableError, match="TooManyConnectionsError"):
            await store.get_secret("anything")
    finally:
        await store.close()

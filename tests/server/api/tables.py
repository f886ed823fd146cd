"""What the server wrote, read straight from its database: the SQLite file, or PostgreSQL under `each_store`."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg

from tests.support import wattfare_server

METERING_TABLES = ("ledger", "holds", "counters", "connections")


async def _postgres_counts(url: str, tables: tuple[str, ...]) -> dict[str, int]:
    db = await asyncpg.connect(url)
    try:
        # Table names are constants in the tests, never data.
        return {table: await db.fetchval(f"SELECT COUNT(*) FROM {table}") for table in tables}
    finally:
        await db.close()


def row_counts(db_path: Path, tables: tuple[str, ...] = METERING_TABLES) -> dict[str, int]:
    """Rows per table, read through a separate connection (the server's own one stays open)."""
    url = wattfare_server.database_override
    if url is not None:
        # Its own event loop in its own thread: callers may be inside a running loop.
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, _postgres_counts(url, tables)).result()
    db = sqlite3.connect(db_path)
    try:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in tables}
    finally:
        db.close()


def nothing_metered(db_path: Path) -> bool:
    """True when no connection, counter, hold or ledger row exists."""
    return not any(row_counts(db_path).values())

"""The benchmark's database read and maintained beside the store (`ledger_archive_scale.py`): SQLite or PostgreSQL.

Its rows streamed, statements run outside any transaction (VACUUM), its bytes on disk and the ledger's, a compacted
copy of it; and the PostgreSQL server's admin statements (create, drop).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from ledger_inspect import LedgerSize, PostgresDatabase, SqliteDatabase
from pg_connection import run_as_admin, run_on_connection


class Side(Protocol):
    """One benchmark database, read and maintained beside the store."""

    engine: str

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        """The statement's rows, streamed."""
        ...

    def run(self, sql: str) -> None:
        """Run a statement outside any transaction (VACUUM)."""
        ...

    def size(self) -> dict[str, int]:
        """The database's bytes on disk, as the engine counts them."""
        ...

    def ledger_size(self) -> LedgerSize:
        """The ledger's table and index bytes (`ledger_inspect.py`)."""
        ...

    def compacted_copy(self) -> Side:
        """A copy of the database with the ledger compacted (as VACUUM leaves it), the original left as it is."""
        ...

    def discard(self) -> None:
        """Delete this (copied) database."""
        ...


class SqliteSide:
    """A SQLite file."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        db = sqlite3.connect(self.path)
        try:
            yield from db.execute(sql)
        finally:
            db.close()

    def run(self, sql: str) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(sql)
        finally:
            db.close()

    def size(self) -> dict[str, int]:
        wal = self.path.with_name(self.path.name + "-wal")
        db = sqlite3.connect(self.path)
        try:
            page_size, page_count, freelist = (
                int(db.execute(f"PRAGMA {pragma}").fetchone()[0])
                for pragma in ("page_size", "page_count", "freelist_count")
            )
        finally:
            db.close()
        return {
            "file_bytes": self.path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "page_size": page_size,
            "page_count": page_count,
            "pages_bytes": page_count * page_size,
            "freelist_pages": freelist,
            "freelist_bytes": freelist * page_size,
        }

    def ledger_size(self) -> LedgerSize:
        return SqliteDatabase(self.path).ledger_size()

    def compacted_copy(self) -> SqliteSide:
        copy = self.path.with_name(f"compacted-{self.path.name}")
        copy.unlink(missing_ok=True)
        self.run(f"VACUUM INTO '{copy}'")
        return SqliteSide(copy)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class PostgresSide:
    """A PostgreSQL database; each call on a connection of its own (the store has its own pool)."""

    engine = "postgresql"

    def __init__(self, admin: str, name: str) -> None:
        self.admin = admin
        self.name = name
        self.url = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))

    def rows(self, sql: str) -> Iterator[tuple[Any, ...]]:
        # Fetched whole (asyncpg cannot be iterated from synchronous code): a few hundred MB at 1M rows at most.
        async def fetch(db: Any) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await db.fetch(sql, timeout=1800)]

        yield from run_on_connection(self.url, fetch)

    def run(self, sql: str) -> None:
        run_on_connection(self.url, lambda db: db.execute(sql, timeout=1800))

    def size(self) -> dict[str, int]:
        async def sizes(db: Any) -> dict[str, int]:
            ledger = await db.fetchval("SELECT pg_total_relation_size('ledger')")
            database = await db.fetchval("SELECT pg_database_size(current_database())")
            return {"ledger_total_relation_bytes": int(ledger), "database_bytes": int(database)}

        return run_on_connection(self.url, sizes)

    def ledger_size(self) -> LedgerSize:
        return PostgresDatabase(self.url).ledger_size()

    def compacted_copy(self) -> PostgresSide:
        copy = PostgresSide(self.admin, f"{self.name}_compacted")
        # A file-level copy (no connection may be open on the original meanwhile), compacted there.
        asyncio.run(
            run_as_admin(self.admin, *drop_database(copy.name), f"CREATE DATABASE {copy.name} TEMPLATE {self.name}")
        )
        copy.run("VACUUM FULL ledger")
        return copy

    def discard(self) -> None:
        asyncio.run(run_as_admin(self.admin, *drop_database(self.name)))


def drop_database(name: str) -> tuple[str]:
    return (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",)

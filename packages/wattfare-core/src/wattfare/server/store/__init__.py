"""Durable state behind one interface: SQLite embedded by default, PostgreSQL to scale out.

`protocols.Store` is the interface, the sum of small protocols a service may depend on instead; its SQL is
written once (`sql`) and run by an engine per database (`sqlite`, `postgres`).
"""

from __future__ import annotations

from pathlib import Path

from wattfare.server.store.protocols import Store, StoreUnavailableError
from wattfare.server.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store", "StoreUnavailableError", "open_store"]


def open_store(database_url: str, *, pool_size: int = 10) -> Store:
    """Open the store a database URL names.

    `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, or `postgresql://user@host:5432/db`
    (with `pool_size` connections per process at most).
    """
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://")
        path = path.removeprefix("/") if not path.startswith("//") else path[1:]
        return SQLiteStore(":memory:" if path in ("", ":memory:") else Path(path))
    if database_url.startswith(("postgresql://", "postgres://")):
        # Imported here so the embedded default needs no PostgreSQL driver.
        from wattfare.server.store.postgres import PostgresStore

        return PostgresStore(database_url, min_size=min(2, pool_size), max_size=pool_size)
    scheme = database_url.split(":", 1)[0]
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///path.db or postgresql://…")

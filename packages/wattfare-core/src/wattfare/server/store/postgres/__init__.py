"""The PostgreSQL store: its engine (an asyncpg pool) for any number of stateless instances."""

from __future__ import annotations

from wattfare.server.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

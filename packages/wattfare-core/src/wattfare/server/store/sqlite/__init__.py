"""The embedded SQLite store: its engine, group commit and off-request checkpoints."""

from __future__ import annotations

from wattfare.server.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]

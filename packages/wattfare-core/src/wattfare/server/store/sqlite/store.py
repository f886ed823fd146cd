"""The embedded store: the SQL written once (`sql.store.SqlStore`) over one SQLite file."""

from __future__ import annotations

from pathlib import Path

from wattfare.server.store.sql.measured import MeasuredEngine
from wattfare.server.store.sql.store import SqlStore
from wattfare.server.store.sqlite.engine import SQLiteEngine


class SQLiteStore(SqlStore):
    """A `Store` on one SQLite file (or `:memory:`); call `upgrade()` before use."""

    def __init__(self, path: str | Path) -> None:
        """Open (and create) the database file."""
        engine = SQLiteEngine(path)
        super().__init__(MeasuredEngine(engine))
        # The engine's parts, for tests and benchmarks that watch its statements, group commits and checkpoints.
        self._db = engine.db
        self._transactions = engine.transactions
        self._checkpointer = engine.checkpointer

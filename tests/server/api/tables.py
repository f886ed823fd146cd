"""What the server wrote, read straight from its SQLite file with the stdlib driver."""

from __future__ import annotations

import sqlite3
from pathlib import Path

METERING_TABLES = ("ledger", "reservations", "counters", "connections")


def row_counts(db_path: Path, tables: tuple[str, ...] = METERING_TABLES) -> dict[str, int]:
    """Rows per table, read through a separate connection (the server's own one stays open)."""
    db = sqlite3.connect(db_path)
    try:
        # Table names are constants in the tests, never data.
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in tables}
    finally:
        db.close()


def nothing_metered(db_path: Path) -> bool:
    """True when no connection, counter, reservation or ledger row exists."""
    return not any(row_counts(db_path).values())

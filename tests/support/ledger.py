"""The money invariant, written once: read a Wattfare database's books and check them after a test.

Works on either store (a SQLite file or a PostgreSQL URL), from synchronous test code. What it checks:

- at rest, nothing is held: no reservation is left and every counter's `reserved` is 0;
- every account's settled spend is its ledger's sum (counters derive from the ledger), and within its cap;
- no ledger row is `expired` unless the test killed a server process (only a dead process's holds expire);
- every request the test names is charged at most the bound the test gives for it (what its relayed
  tokens, plus the prompt bound, can cost), and exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row."""

    request_id: str
    app_user_id: str
    kind: str
    amount: int
    absorbed: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Balance:
    """One connection's counters in one window, beside its ledger."""

    app_user_id: str
    cap: int
    spent: int
    reserved: int
    ledger_total: int


_ROWS = "SELECT request_id, app_user_id, kind, amount, absorbed, prompt_tokens, completion_tokens FROM ledger"
_BALANCES = (
    "SELECT c.app_user_id, c.cap, k.spent, k.reserved, (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l "
    "WHERE l.connection_id = c.id AND l.window_key = k.window_key) FROM connections c "
    "JOIN counters k ON k.connection_id = c.id"
)


class Ledger:
    """Read-only access to the books of a SQLite file (a `Path` or `sqlite:///` URL) or a PostgreSQL database.

    Its calls block (PostgreSQL is read on a loop of their own): from async tests, run them in a thread.
    """

    def __init__(self, database: Path | str) -> None:
        if isinstance(database, str) and database.startswith("sqlite:///"):
            database = Path(database.removeprefix("sqlite:///"))
        self.database = database

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        if isinstance(self.database, Path):
            with closing(sqlite3.connect(self.database, timeout=10)) as db:
                return db.execute(sql).fetchall()
        url = self.database

        async def fetch() -> list[tuple[Any, ...]]:
            db = await asyncpg.connect(url, timeout=10)
            try:
                return [tuple(row) for row in await db.fetch(sql)]
            finally:
                await db.close()

        return asyncio.run(fetch())

    def rows(self) -> dict[str, LedgerRow]:
        """Every ledger row, by request id (the ledger holds at most one per request)."""
        rows = [LedgerRow(*(row[:3]), *(int(value) for value in row[3:])) for row in self._rows(_ROWS)]
        by_id = {row.request_id: row for row in rows}
        assert len(by_id) == len(rows), "a request was settled more than once"
        return by_id

    def balances(self) -> list[Balance]:
        """Every connection's counters per window, with its ledger total."""
        return [Balance(row[0], *(int(value) for value in row[1:])) for row in self._rows(_BALANCES)]

    def open_holds(self) -> int:
        """Reservations still held."""
        return int(self._rows("SELECT COUNT(*) FROM reservations")[0][0])

    def wait_until_nothing_is_held(self, within: float = 10.0) -> None:
        """Wait for settlements still being written (a hang-up's settle runs on after the client left)."""
        deadline = time.monotonic() + within
        while (held := self.open_holds()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held == 0, f"{held} holds were never settled"

    def check(
        self,
        *,
        bounds: Mapping[str, int] | None = None,
        expired_allowed: bool = False,
        settle_within: float = 10.0,
    ) -> dict[str, LedgerRow]:
        """Assert the money invariant (see the module docstring); return the ledger rows by request id.

        Args:
            bounds: The most each named request may be charged, in nano-USD; each must have exactly one row. A
                request is named by its request id, or by its app user id when that user made only it.
            expired_allowed: Whether the test killed a server process (whose holds may expire).
            settle_within: Seconds to wait for holds still being settled.
        """
        self.wait_until_nothing_is_held(settle_within)
        rows = self.rows()
        for balance in self.balances():
            assert balance.reserved == 0, balance
            assert balance.spent == balance.ledger_total, balance
            assert balance.spent <= balance.cap, balance
        if not expired_allowed:
            expired = [row for row in rows.values() if row.kind == "expired"]
            assert not expired, f"holds expired though no server died: {expired}"
        for name, bound in (bounds or {}).items():
            found = [rows[name]] if name in rows else [row for row in rows.values() if row.app_user_id == name]
            assert len(found) == 1, f"request {name} should have been settled exactly once: {found}"
            (row,) = found
            assert row.amount <= bound, f"{row} charged more than its bound of {bound} nano-USD"
        return rows

"""The server's books, read straight from its SQLite file: what the cap guarantee is checked against."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    """One connection's counters in one window, next to what its ledger says."""

    app_user_id: str
    state: str
    cap: int
    spent: int
    reserved: int
    ledger_total: int
    ledger_entries: int


@dataclass(frozen=True)
class Entry:
    """One ledger row."""

    request_id: str
    app_user_id: str
    kind: str
    amount: int
    absorbed: int
    completion_tokens: int


class Books:
    """Read-only queries over a Wattfare SQLite file (written concurrently by the server: WAL mode)."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db:
            return db.execute(sql, params).fetchall()

    def accounts(self) -> list[Account]:
        """Every connection with counters, per window."""
        rows = self._rows(
            "SELECT c.app_user_id, c.state, c.cap, k.spent, k.reserved, "
            "(SELECT COALESCE(SUM(l.amount), 0) FROM ledger l "
            " WHERE l.connection_id = c.id AND l.window_key = k.window_key), "
            "(SELECT COUNT(*) FROM ledger l WHERE l.connection_id = c.id AND l.window_key = k.window_key) "
            "FROM connections c JOIN counters k ON k.connection_id = c.id ORDER BY c.app_user_id"
        )
        return [Account(*row) for row in rows]  # type: ignore[arg-type]

    def account(self, app_user_id: str) -> Account:
        """The one account of `app_user_id` (ids are unique per test)."""
        found = [account for account in self.accounts() if account.app_user_id == app_user_id]
        assert len(found) == 1, f"expected one account for {app_user_id!r}, found {found}"
        return found[0]

    def entries(self, app_user_id: str) -> list[Entry]:
        """The ledger rows of one app user, oldest first."""
        rows = self._rows(
            "SELECT request_id, app_user_id, kind, amount, absorbed, completion_tokens FROM ledger "
            "WHERE app_user_id = ? ORDER BY seq",
            (app_user_id,),
        )
        return [Entry(*row) for row in rows]  # type: ignore[arg-type]

    def entry(self, request_id: str) -> Entry | None:
        """The ledger row settling `request_id` (the `Wattfare-Request-Id`), if settled yet."""
        rows = self._rows(
            "SELECT request_id, app_user_id, kind, amount, absorbed, completion_tokens FROM ledger "
            "WHERE request_id = ?",
            (request_id,),
        )
        return Entry(*rows[0]) if rows else None  # type: ignore[arg-type]

    def wait_for_entry(self, request_id: str, within: float) -> Entry:
        """The ledger row of `request_id`, waiting up to `within` seconds for it to be written."""
        deadline = time.monotonic() + within
        while (found := self.entry(request_id)) is None:
            assert time.monotonic() < deadline, f"no ledger entry for {request_id} within {within} s"
            time.sleep(0.05)
        return found

    def hold(self, request_id: str) -> int | None:
        """The amount reserved for a request still in flight."""
        rows = self._rows("SELECT amount FROM reservations WHERE id = ?", (request_id,))
        return int(rows[0][0]) if rows else None  # type: ignore[arg-type]

    def open_reservations(self) -> int:
        """How many reservations are still held."""
        return int(self._rows("SELECT COUNT(*) FROM reservations")[0][0])  # type: ignore[arg-type]

    def assert_balanced(self) -> None:
        """The cap guarantee at rest: spent <= cap, ledger == counters, nothing held."""
        assert self.open_reservations() == 0
        for account in self.accounts():
            assert account.spent <= account.cap, account
            assert account.spent == account.ledger_total, account
            assert account.reserved == 0, account

"""The books of a Wattfare PostgreSQL database, read directly: what the cap guarantee is checked against."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
import asyncpg

from tests.server.process.books import Account  # the same record, read from PostgreSQL here


@dataclass(frozen=True)
class Entry:
    """One ledger row."""

    request_id: str
    app_user_id: str
    kind: str
    amount: int
    absorbed: int


@dataclass(frozen=True)
class Totals:
    """Whole-database sums: any refused request that moved money would move one of these."""

    ledger_rows: int
    ledger_amount: int
    spent: int
    reserved: int
    reservations: int


class PgBooks:
    """Read-only queries over a Wattfare PostgreSQL database, one short connection each."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    async def _rows(self, sql: str, *params: object) -> list[Any]:
        db = await asyncpg.connect(self.url, timeout=10)
        try:
            return list(await db.fetch(sql, *params))
        finally:
            await db.close()

    async def accounts(self, app_user_prefix: str = "") -> list[Account]:
        """Every connection with counters (per window) whose app user id starts with `app_user_prefix`."""
        rows = await self._rows(
            "SELECT c.app_user_id, c.state, c.cap, k.spent, k.reserved, "
            "(SELECT COALESCE(SUM(l.amount), 0) FROM ledger l "
            " WHERE l.connection_id = c.id AND l.window_key = k.window_key), "
            "(SELECT COUNT(*) FROM ledger l WHERE l.connection_id = c.id AND l.window_key = k.window_key) "
            "FROM connections c JOIN counters k ON k.connection_id = c.id "
            "WHERE starts_with(c.app_user_id, $1) ORDER BY c.app_user_id",
            app_user_prefix,
        )
        return [Account(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6])) for r in rows]

    async def account(self, app_user_id: str) -> Account:
        """The one account of `app_user_id`."""
        found = [account for account in await self.accounts(app_user_id) if account.app_user_id == app_user_id]
        assert len(found) == 1, f"expected one account for {app_user_id!r}, found {found}"
        return found[0]

    async def entries(self, app_user_prefix: str) -> list[Entry]:
        """The ledger rows of the app users whose id starts with `app_user_prefix`, oldest first."""
        rows = await self._rows(
            "SELECT request_id, app_user_id, kind, amount, absorbed FROM ledger "
            "WHERE starts_with(app_user_id, $1) ORDER BY seq",
            app_user_prefix,
        )
        return [Entry(*row) for row in rows]

    async def entry(self, request_id: str) -> Entry | None:
        """The ledger row settling `request_id`, if settled yet."""
        rows = await self._rows(
            "SELECT request_id, app_user_id, kind, amount, absorbed FROM ledger WHERE request_id = $1", request_id
        )
        return Entry(*rows[0]) if rows else None

    async def wait_for_entry(self, request_id: str, within: float) -> tuple[Entry, float]:
        """The ledger row of `request_id` and how long it took to appear, waiting up to `within` seconds."""
        started = time.monotonic()
        while (found := await self.entry(request_id)) is None:
            assert time.monotonic() - started < within, f"no ledger entry for {request_id} within {within} s"
            await anyio.sleep(0.1)
        return found, time.monotonic() - started

    async def hold(self, request_id: str) -> int | None:
        """The amount reserved for a request still in flight."""
        rows = await self._rows("SELECT amount FROM reservations WHERE id = $1", request_id)
        return int(rows[0][0]) if rows else None

    async def open_reservations(self, app_user_prefix: str = "") -> int:
        """How many reservations of the app users whose id starts with `app_user_prefix` are still held."""
        rows = await self._rows(
            "SELECT COUNT(*) FROM reservations r JOIN connections c ON c.id = r.connection_id "
            "WHERE starts_with(c.app_user_id, $1)",
            app_user_prefix,
        )
        return int(rows[0][0])

    async def totals(self) -> Totals:
        """Whole-database sums of the ledger, the counters and the holds."""
        rows = await self._rows(
            "SELECT (SELECT COUNT(*) FROM ledger), (SELECT COALESCE(SUM(amount), 0) FROM ledger), "
            "(SELECT COALESCE(SUM(spent), 0) FROM counters), (SELECT COALESCE(SUM(reserved), 0) FROM counters), "
            "(SELECT COUNT(*) FROM reservations)"
        )
        return Totals(*(int(value) for value in rows[0]))

    async def assert_balanced(self, app_user_prefix: str = "") -> list[Account]:
        """The cap guarantee at rest: nothing held, and per account spent <= cap, ledger == counters."""
        assert await self.open_reservations(app_user_prefix) == 0
        accounts = await self.accounts(app_user_prefix)
        for account in accounts:
            assert account.spent <= account.cap, account
            assert account.spent == account.ledger_total, account
            assert account.reserved == 0, account
        return accounts

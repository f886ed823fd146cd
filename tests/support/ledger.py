"""A Wattfare database's books, read straight from it: what the money guarantees are checked against.

One reader for either store: a SQLite file (a `Path` or a `sqlite:///` URL, read while the server writes it)
or a PostgreSQL URL. Each statement is written once, in PostgreSQL's spelling (`$1`); SQLite reads it with
numbered parameters (`?1`). `Ledger` blocks; `AsyncLedger` is its twin for async tests, each call run in a
worker thread so that the streams a test drives keep flowing while it waits on the books.

The money invariant (`Ledger.check`):

- at rest, nothing is held: no hold is left and every counter's `reserved` is 0;
- every account's settled spend is its ledger's sum (counters derive from the ledger), and within its cap;
- no ledger row is `expired` unless the test killed a server process (only a dead process's holds expire);
- every request the test names is charged at most the bound the test gives for it (what its relayed
  tokens, plus the prompt bound, can cost), and exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import asyncpg

Row = tuple[Any, ...]
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One ledger row."""

    request_id: str
    app_user_id: str
    kind: str
    amount: int
    absorbed: int
    prompt_tokens: int
    completion_tokens: int
    endpoint: str = "chat.completions"


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
class Totals:
    """Whole-database sums: any refused request that moved money would move one of these."""

    ledger_rows: int
    ledger_amount: int
    spent: int
    reserved: int
    holds: int


# An app user id starting with $1, whose length is $2: `starts_with` is PostgreSQL's alone.
_UNDER_PREFIX = "substr({column}, 1, $2) = $1"
_ACCOUNTS = (
    "SELECT c.app_user_id, c.state, c.cap, k.spent, k.reserved, "
    "(SELECT COALESCE(SUM(l.amount), 0) FROM ledger l WHERE l.connection_id = c.id AND l.window_key = k.window_key), "
    "(SELECT COUNT(*) FROM ledger l WHERE l.connection_id = c.id AND l.window_key = k.window_key) "
    "FROM connections c JOIN counters k ON k.connection_id = c.id "
    f"WHERE {_UNDER_PREFIX.format(column='c.app_user_id')} ORDER BY c.app_user_id"
)
_ENTRIES = (
    "SELECT request_id, app_user_id, kind, amount, absorbed, prompt_tokens, completion_tokens, endpoint FROM ledger"
)
_OPEN_HOLDS = (
    "SELECT COUNT(*) FROM holds r JOIN connections c ON c.id = r.connection_id "
    f"WHERE {_UNDER_PREFIX.format(column='c.app_user_id')}"
)
_TOTALS = (
    "SELECT (SELECT COUNT(*) FROM ledger), (SELECT COALESCE(SUM(amount), 0) FROM ledger), "
    "(SELECT COALESCE(SUM(spent), 0) FROM counters), (SELECT COALESCE(SUM(reserved), 0) FROM counters), "
    "(SELECT COUNT(*) FROM holds)"
)


def _under(prefix: str) -> tuple[object, ...]:
    return (prefix, len(prefix))


def _entry(row: Row) -> Entry:
    return Entry(row[0], row[1], row[2], *(int(value) for value in row[3:7]), endpoint=row[7])


async def _fetch_postgres(url: str, sql: str, params: tuple[object, ...]) -> list[Row]:
    db = await asyncpg.connect(url, timeout=10)
    try:
        return [tuple(row) for row in await db.fetch(sql, *params)]
    finally:
        await db.close()


def _assert_balanced(open_holds: int, accounts: list[Account]) -> None:
    assert open_holds == 0, f"{open_holds} holds are still held"
    for account in accounts:
        assert account.reserved == 0, account
        assert account.spent == account.ledger_total, account
        assert account.spent <= account.cap, account


class Ledger:
    """Read-only access to the books of a SQLite file (a `Path` or `sqlite:///` URL) or a PostgreSQL database.

    Each call opens a short connection of its own; PostgreSQL is read on an event loop of its own, in a thread
    of its own, so a call works from anywhere (in an async test it blocks the loop while it reads).
    """

    def __init__(self, database: Path | str) -> None:
        if isinstance(database, str) and database.startswith("sqlite:///"):
            database = Path(database.removeprefix("sqlite:///"))
        self.database = database

    def _fetch(self, sql: str, *params: object) -> list[Row]:
        if isinstance(self.database, Path):
            with closing(sqlite3.connect(self.database, timeout=10)) as db:
                return db.execute(sql.replace("$", "?"), params).fetchall()
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, _fetch_postgres(self.database, sql, params)).result()

    def accounts(self, app_user_prefix: str = "") -> list[Account]:
        """Every connection with counters (per window) whose app user id starts with `app_user_prefix`."""
        rows = self._fetch(_ACCOUNTS, *_under(app_user_prefix))
        return [Account(row[0], row[1], *(int(value) for value in row[2:])) for row in rows]

    def account(self, app_user_id: str) -> Account:
        """The one account of `app_user_id` (ids are unique per test)."""
        found = [account for account in self.accounts(app_user_id) if account.app_user_id == app_user_id]
        assert len(found) == 1, f"expected one account for {app_user_id!r}, found {found}"
        return found[0]

    def entries(self, app_user_id: str | None = None, *, app_user_prefix: str | None = None) -> list[Entry]:
        """The ledger rows of one app user, or of those whose id starts with `app_user_prefix`, oldest first."""
        if app_user_id is not None:
            rows = self._fetch(f"{_ENTRIES} WHERE app_user_id = $1 ORDER BY seq", app_user_id)
        else:
            where = _UNDER_PREFIX.format(column="app_user_id")
            rows = self._fetch(f"{_ENTRIES} WHERE {where} ORDER BY seq", *_under(app_user_prefix or ""))
        return [_entry(row) for row in rows]

    def entry(self, request_id: str) -> Entry | None:
        """The ledger row settling `request_id` (the `Wattfare-Request-Id`), if settled yet."""
        rows = self._fetch(f"{_ENTRIES} WHERE request_id = $1", request_id)
        return _entry(rows[0]) if rows else None

    def rows(self) -> dict[str, Entry]:
        """Every ledger row, by request id (the ledger holds at most one per request)."""
        rows = [_entry(row) for row in self._fetch(_ENTRIES)]
        by_id = {row.request_id: row for row in rows}
        assert len(by_id) == len(rows), "a request was settled more than once"
        return by_id

    def wait_for_entry(self, request_id: str, within: float) -> Entry:
        """The ledger row of `request_id`, waiting up to `within` seconds for it to be written."""
        deadline = time.monotonic() + within
        while (found := self.entry(request_id)) is None:
            assert time.monotonic() < deadline, f"no ledger entry for {request_id} within {within} s"
            time.sleep(0.05)
        return found

    def hold(self, request_id: str) -> int | None:
        """The amount reserved for a request still in flight."""
        rows = self._fetch("SELECT amount FROM holds WHERE id = $1", request_id)
        return int(rows[0][0]) if rows else None

    def open_holds(self, app_user_prefix: str = "") -> int:
        """How many holds (of the app users whose id starts with `app_user_prefix`) are still held."""
        return int(self._fetch(_OPEN_HOLDS, *_under(app_user_prefix))[0][0])

    def wait_until_nothing_is_held(self, within: float = 10.0) -> None:
        """Wait for settlements still being written (a hang-up's settle runs on after the client left)."""
        deadline = time.monotonic() + within
        while (held := self.open_holds()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held == 0, f"{held} holds were never settled"

    def totals(self) -> Totals:
        """Whole-database sums of the ledger, the counters and the holds."""
        return Totals(*(int(value) for value in self._fetch(_TOTALS)[0]))

    def assert_balanced(self, app_user_prefix: str = "") -> list[Account]:
        """The cap guarantee at rest, now: nothing held, and per account spent <= cap, ledger == counters."""
        held = self.open_holds(app_user_prefix)
        accounts = self.accounts(app_user_prefix)
        _assert_balanced(held, accounts)
        return accounts

    def check(
        self,
        *,
        bounds: Mapping[str, int] | None = None,
        expired_allowed: bool = False,
        settle_within: float = 10.0,
    ) -> dict[str, Entry]:
        """Assert the money invariant (see the module docstring); return the ledger rows by request id.

        Args:
            bounds: The most each named request may be charged, in nano-USD; each must have exactly one row. A
                request is named by its request id, or by its app user id when that user made only it.
            expired_allowed: Whether the test killed a server process (whose holds may expire).
            settle_within: Seconds to wait for holds still being settled.
        """
        self.wait_until_nothing_is_held(settle_within)
        rows = self.rows()
        _assert_balanced(0, self.accounts())
        if not expired_allowed:
            expired = [row for row in rows.values() if row.kind == "expired"]
            assert not expired, f"holds expired though no server died: {expired}"
        for name, bound in (bounds or {}).items():
            found = [rows[name]] if name in rows else [row for row in rows.values() if row.app_user_id == name]
            assert len(found) == 1, f"request {name} should have been settled exactly once: {found}"
            (row,) = found
            assert row.amount <= bound, f"{row} charged more than its bound of {bound} nano-USD"
        return rows


class AsyncLedger:
    """`Ledger`'s twin for async tests: the same calls, each awaited while a worker thread reads the books."""

    def __init__(self, database: Path | str) -> None:
        self.sync = Ledger(database)

    async def accounts(self, app_user_prefix: str = "") -> list[Account]:
        """`Ledger.accounts`."""
        return await _in_thread(partial(self.sync.accounts, app_user_prefix))

    async def account(self, app_user_id: str) -> Account:
        """`Ledger.account`."""
        return await _in_thread(partial(self.sync.account, app_user_id))

    async def entries(self, app_user_id: str | None = None, *, app_user_prefix: str | None = None) -> list[Entry]:
        """`Ledger.entries`."""
        return await _in_thread(partial(self.sync.entries, app_user_id, app_user_prefix=app_user_prefix))

    async def entry(self, request_id: str) -> Entry | None:
        """`Ledger.entry`."""
        return await _in_thread(partial(self.sync.entry, request_id))

    async def rows(self) -> dict[str, Entry]:
        """`Ledger.rows`."""
        return await _in_thread(self.sync.rows)

    async def wait_for_entry(self, request_id: str, within: float) -> Entry:
        """`Ledger.wait_for_entry`."""
        return await _in_thread(partial(self.sync.wait_for_entry, request_id, within))

    async def hold(self, request_id: str) -> int | None:
        """`Ledger.hold`."""
        return await _in_thread(partial(self.sync.hold, request_id))

    async def open_holds(self, app_user_prefix: str = "") -> int:
        """`Ledger.open_holds`."""
        return await _in_thread(partial(self.sync.open_holds, app_user_prefix))

    async def wait_until_nothing_is_held(self, within: float = 10.0) -> None:
        """`Ledger.wait_until_nothing_is_held`."""
        await _in_thread(partial(self.sync.wait_until_nothing_is_held, within))

    async def totals(self) -> Totals:
        """`Ledger.totals`."""
        return await _in_thread(self.sync.totals)

    async def assert_balanced(self, app_user_prefix: str = "") -> list[Account]:
        """`Ledger.assert_balanced`."""
        return await _in_thread(partial(self.sync.assert_balanced, app_user_prefix))

    async def check(
        self, *, bounds: Mapping[str, int] | None = None, expired_allowed: bool = False, settle_within: float = 10.0
    ) -> dict[str, Entry]:
        """`Ledger.check`."""
        call = partial(self.sync.check, bounds=bounds, expired_allowed=expired_allowed, settle_within=settle_within)
        return await _in_thread(call)


async def _in_thread(call: Callable[[], T]) -> T:
    # Abandoned on cancel, as an awaited query would be: a test's `fail_after` still fires on time.
    return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)

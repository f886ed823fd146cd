"""What counts as the database being unavailable, as opposed to a bug in a statement.

An outage is answered `unavailable` (503 with `Retry-After`) and retried later; a bug is a 500. The line
is drawn once per dialect here, so every store call, the proxy and the relay agree on it:

- PostgreSQL: anything raised while connecting or taking a pooled connection, whatever its class (the
  server refusing connections answers 55000 while `ALLOW_CONNECTIONS` is off, 3D000 once the database is
  gone, 57P03 while starting, 53300 when out of slots, 28xxx when its access rules change), and, once
  connected, a lost connection or an error of SQLSTATE class 08 (connection), 53 (insufficient
  resources), 57 (operator intervention) or 58 (system error).
- SQLite: the result codes of a file that cannot be used right now (busy or locked past the busy timeout,
  out of memory, read-only, I/O error, corrupt or not a database, disk full, cannot open).
"""

from __future__ import annotations

import sqlite3

import asyncpg  # pyright: ignore[reportMissingTypeStubs]

# SQLSTATE classes (the first two characters) that mean the server, not the statement, failed.
_POSTGRES_OUTAGE_CLASSES = frozenset({"08", "53", "57", "58"})
# Primary SQLite result codes (the low byte of an extended code) that mean the file cannot be used now.
_SQLITE_OUTAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


def postgres_outage(exc: BaseException, *, connecting: bool) -> bool:
    """Whether `exc`, raised by asyncpg, means PostgreSQL is unavailable (`connecting`: before any statement)."""
    if not isinstance(exc, Exception):
        return False  # cancellation and interpreter exits are not the database's doing
    if connecting or isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return (
        isinstance(exc, asyncpg.PostgresError)
        and isinstance(sqlstate, str)
        and sqlstate[:2] in _POSTGRES_OUTAGE_CLASSES
    )


def sqlite_outage(exc: BaseException) -> bool:
    """Whether `exc`, raised by sqlite3, means the database file cannot be used right now."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and isinstance(code, int) and code & 0xFF in _SQLITE_OUTAGE_CODES

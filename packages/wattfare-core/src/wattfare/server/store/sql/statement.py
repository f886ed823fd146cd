"""One SQL statement, written once with `?` placeholders and spelled for each engine when its module is imported.

SQLite takes `?` as written; asyncpg wants `$1..$n`, so the PostgreSQL spelling numbers the placeholders once,
at import time, the way `migrations` translates the schema. A statement that reuses a value passes it again
(`?` twice) instead of naming `$1` twice: both engines then read the same text the same way.

A few statements truly differ (PostgreSQL's row lock in settle): `per_dialect` keeps both spellings side by
side, still with `?` placeholders. A list of ids is bound as ONE parameter, a JSON array (`id_list`), which
each engine unpacks with its own JSON function (`with_id_list`): neither engine then builds SQL per call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

_SQLITE_IDS = "(SELECT value FROM json_each(?))"
_POSTGRES_IDS = "(SELECT value FROM json_array_elements_text(?::json))"


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement as each engine spells it.

    Attributes:
        sqlite: the text for sqlite3 (`?` placeholders).
        postgres: the text for asyncpg (`$1..$n` placeholders).
    """

    sqlite: str
    postgres: str


def portable(text: str) -> Statement:
    """A statement both engines accept as written, apart from its placeholders."""
    return Statement(sqlite=text, postgres=numbered(text))


def per_dialect(*, sqlite: str, postgres: str) -> Statement:
    """A statement the engines spell differently (both written with `?` placeholders)."""
    return Statement(sqlite=sqlite, postgres=numbered(postgres))


# The SQLite spelling of a statement only PostgreSQL runs: SQLite refuses it (no such function), loudly.
POSTGRES_ONLY = "SELECT wattfare_statement_for_postgresql_only()"


def postgres_only(text: str) -> Statement:
    """A statement only PostgreSQL runs (a data-modifying CTE: SQLite has none); SQLite refuses its spelling."""
    return Statement(sqlite=POSTGRES_ONLY, postgres=numbered(text))


def with_id_list(text: str) -> Statement:
    """A statement whose `{ids}` is a subquery over a list of ids, bound where it stands as `id_list(ids)`."""
    return per_dialect(sqlite=text.format(ids=_SQLITE_IDS), postgres=text.format(ids=_POSTGRES_IDS))


def id_list(ids: Sequence[str]) -> str:
    """Ids as the one parameter a `with_id_list` statement takes in their place."""
    return json.dumps(list(ids))


def numbered(text: str) -> str:
    """`text` with each `?` outside a string literal replaced by `$1`, `$2`, … in order."""
    # Splitting on quotes leaves the literals at the odd positions ('' inside a literal splits into an empty
    # piece between two odd ones, so the parity still holds).
    pieces = text.split("'")
    count = 0
    for index in range(0, len(pieces), 2):
        parts = pieces[index].split("?")
        spelled = parts[0]
        for part in parts[1:]:
            count += 1
            spelled += f"${count}{part}"
        pieces[index] = spelled
    return "'".join(pieces)

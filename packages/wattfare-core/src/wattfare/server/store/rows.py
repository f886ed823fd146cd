"""Turning database rows into records, the same way for every engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from wattfare.server.store.account_records import Member
from wattfare.server.store.records import Connection, ConnectionState, Mode
from wattfare.server.store.timestamps import from_text

CONNECTION_COLUMNS = "id, app_id, app_user_id, mode, state, cap, created_at, updated_at"
# The same columns of `connections c`, for statements that join it.
QUALIFIED_CONNECTION_COLUMNS = "c.id, c.app_id, c.app_user_id, c.mode, c.state, c.cap, c.created_at, c.updated_at"
MEMBER_COLUMNS = "id, email, created_at"


def connection_from_row(row: Sequence[Any]) -> Connection:
    """A `Connection` from the first eight columns of `row`, in `CONNECTION_COLUMNS` order."""
    return Connection(
        id=row[0],
        app_id=row[1],
        app_user_id=row[2],
        mode=cast("Mode", row[3]),
        state=cast("ConnectionState", row[4]),
        cap=row[5],
        created_at=from_text(row[6]),
        updated_at=from_text(row[7]),
    )


def member_from_row(row: Sequence[Any]) -> Member:
    """A `Member` from the first three columns of `row`, in `MEMBER_COLUMNS` order."""
    return Member(row[0], row[1], from_text(row[2]))

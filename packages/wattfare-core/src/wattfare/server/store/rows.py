"""Turning database rows into records, the same way for every store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from wattfare.server.store.records import Connection, ConnectionState, Mode
from wattfare.server.store.timestamps import from_text

CONNECTION_COLUMNS = "id, app_id, app_user_id, mode, state, cap, created_at, updated_at"


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

"""Keys as their operator manages them: which app and mode, and where each stands (active, rotating, revoked)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from wattfare.server.store.records import Mode
from wattfare.server.store.timestamps import from_text

MANAGED_KEY_COLUMNS = "id, app_id, mode, kind, hint, display, created_at, revoked_at, expires_at"


@dataclass(frozen=True, slots=True)
class ManagedKey:
    """One key of an app, with its whole lifecycle (never its plaintext: only the hint).

    Attributes:
        id: the key's id (`key_…`), safe to show and to type.
        app_id: the app it belongs to.
        mode: `test` or `live`.
        kind: `secret` or `publishable`.
        hint: the first and last characters, for recognising it.
        display: the whole key when it is browser-safe (publishable keys made by the console), else None.
        created_at: when it was minted.
        revoked_at: when it was revoked, if it was.
        expires_at: when a rotated key stops authenticating (the end of its grace), if it was rotated.
    """

    id: str
    app_id: str
    mode: Mode
    kind: str
    hint: str
    display: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


def managed_key_from_row(row: Sequence[Any]) -> ManagedKey:
    """A `ManagedKey` from a row of `MANAGED_KEY_COLUMNS`, the same way for every store."""
    return ManagedKey(
        id=row[0],
        app_id=row[1],
        mode=cast("Mode", row[2]),
        kind=row[3],
        hint=row[4],
        display=row[5],
        created_at=from_text(row[6]),
        revoked_at=from_text(row[7]) if row[7] else None,
        expires_at=from_text(row[8]) if row[8] else None,
    )

"""Apps as their developer, the consent page and the operator see them: one row per allowed origin, folded."""

from __future__ import annotations

from wattfare.server.store.account_records import AppProfile
from wattfare.server.store.sql.engine import Row
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import from_text

_SELECT = (
    "SELECT a.id, a.name, a.owner_member_id, a.default_test_cap, a.created_at, o.origin FROM apps a "
    "LEFT JOIN app_origins o ON o.app_id = a.id"
)
_ORDER = " ORDER BY a.created_at, a.id, o.origin"

PROFILE_OF_APP = portable(f"{_SELECT} WHERE a.id = ?{_ORDER}")
PROFILES_OF_OWNER = portable(f"{_SELECT} WHERE a.owner_member_id = ?{_ORDER}")
EVERY_PROFILE = portable(f"{_SELECT}{_ORDER}")


def profiles_from_rows(rows: list[Row]) -> list[AppProfile]:
    """Fold the rows of a profile statement (one per app and origin) into profiles, in their order."""
    profiles: dict[str, AppProfile] = {}
    for row in rows:
        known = profiles.get(row[0])
        origins = (known.allowed_origins if known else ()) + ((row[5],) if row[5] else ())
        profiles[row[0]] = AppProfile(row[0], row[1], row[2], origins, row[3], from_text(row[4]))
    return list(profiles.values())

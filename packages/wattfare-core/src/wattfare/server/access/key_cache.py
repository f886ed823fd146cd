"""Secret key -> app, cached for a few seconds so the hot path skips the database."""

from __future__ import annotations

import time

from wattfare.server.access.keys import hash_key, key_mode
from wattfare.server.store.protocols import AppsAndKeys
from wattfare.server.store.records import KeyRecord

_KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_SIZE = 10_000


class KeyCache:
    """Secret key -> app, remembered for a few seconds so the hot path skips the database.

    A revoked key therefore keeps working for at most `_KEY_CACHE_SECONDS` on each instance. Misses are
    cached too, so a flood of bad keys costs one lookup per key per interval.
    """

    def __init__(self, store: AppsAndKeys) -> None:
        """Cache lookups against `store`."""
        self._store = store
        self._entries: dict[str, tuple[KeyRecord | None, float]] = {}

    async def lookup(self, plaintext: str) -> KeyRecord | None:
        """The app a secret key belongs to, or None."""
        if key_mode(plaintext) is None:
            return None
        now = time.monotonic()
        hit = self._entries.get(plaintext)
        if hit is not None and hit[1] > now:
            return hit[0]
        record = await self._store.find_secret_key(hash_key(plaintext))
        if len(self._entries) >= _KEY_CACHE_SIZE:
            self._entries.clear()
        self._entries[plaintext] = (record, now + _KEY_CACHE_SECONDS)
        return record

    def forget(self) -> None:
        """Drop every cached entry (after a key is revoked in this process)."""
        self._entries.clear()

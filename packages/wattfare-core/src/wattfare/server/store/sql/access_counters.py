"""Single-use tokens and rate-limit hits in SQL: small counters every instance must share."""

from __future__ import annotations

from datetime import datetime

from wattfare.server.store.sql.engine import Executor, SqlConcern
from wattfare.server.store.sql.statement import portable
from wattfare.server.store.timestamps import to_text

_FORGET_EXPIRED_TOKENS = portable("DELETE FROM spent_tokens WHERE expires_at < ?")
_SPEND_TOKEN = portable("INSERT INTO spent_tokens (token_id, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING")
_FORGET_OLD_WINDOWS = portable("DELETE FROM rate_counts WHERE bucket = ? AND window_start < ?")
_COUNT_HIT = portable(
    "INSERT INTO rate_counts (bucket, window_start, hits) VALUES (?, ?, 1) "
    "ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_counts.hits + 1 RETURNING hits"
)


class SqlAccessCounters(SqlConcern):
    """`protocols.SingleUseTokens` and `protocols.RateCounters` over an engine."""

    async def spend_token(self, token_id: str, expires_at: datetime, now: datetime) -> bool:
        """Mark a single-use token used; False on a replay."""
        return await self._engine.write(lambda db: _spend_token(db, token_id, to_text(expires_at), to_text(now)))

    async def count_hit(self, bucket: str, window_start: datetime) -> int:
        """Count one hit in a fixed rate-limit window."""
        return await self._engine.write(lambda db: _count_hit(db, bucket, to_text(window_start)))


async def _spend_token(db: Executor, token_id: str, expires_at: str, now: str) -> bool:
    await db.run(_FORGET_EXPIRED_TOKENS, now)
    return await db.run(_SPEND_TOKEN, token_id, expires_at) == 1


async def _count_hit(db: Executor, bucket: str, window_start: str) -> int:
    # Old windows are dropped as new ones start, so the table stays one row per active bucket.
    await db.run(_FORGET_OLD_WINDOWS, bucket, window_start)
    row = await db.one(_COUNT_HIT, bucket, window_start)
    assert row is not None  # an upsert always returns its row
    return row[0]

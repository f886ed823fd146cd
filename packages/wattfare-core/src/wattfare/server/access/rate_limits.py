"""Fixed-window rate limits kept in the store, so every instance counts against the same budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from wattfare.server.errors import ApiError
from wattfare.server.observability import metrics
from wattfare.server.store.protocols import RateCounters


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` hits per `period` for one bucket (e.g. sessions minted per app per minute)."""

    name: str
    limit: int
    period: timedelta

    async def hit(self, store: RateCounters, key: str, now: datetime) -> int | None:
        """Count a hit for `key` (atomically, before anything it guards runs).

        Returns:
            None within the limit; else the seconds until the window ends (at least 1).
        """
        seconds = int(self.period.total_seconds())
        start_ts = math.floor(now.timestamp() / seconds) * seconds
        window_start = datetime.fromtimestamp(start_ts, tz=now.tzinfo)
        if await store.count_hit(f"{self.name}:{key}", window_start) <= self.limit:
            return None
        metrics.rate_limited(self.name)
        return max(1, math.ceil(start_ts + seconds - now.timestamp()))

    async def check(self, store: RateCounters, key: str, now: datetime) -> None:
        """Count a hit for `key`; raise 429 `rate_limited` with `Retry-After` when over the limit."""
        retry_after = await self.hit(store, key, now)
        if retry_after is not None:
            raise ApiError(
                "rate_limited",
                f"Too many requests: at most {self.limit} per {int(self.period.total_seconds())} s for {self.name}.",
                headers={"Retry-After": str(retry_after)},
            )


async def first_refusal(store: RateCounters, limits: list[tuple[RateLimit, str]], now: datetime) -> int | None:
    """Count a hit against each `(limit, key)` in turn, stopping at the first over its limit.

    Later limits are not counted once one refuses: a client held back by its own limit spends nothing of a
    limit it shares with others.

    Returns:
        None when every limit admits the hit; else the refusing limit's seconds until its window ends.
    """
    for limit, key in limits:
        retry_after = await limit.hit(store, key, now)
        if retry_after is not None:
            return retry_after
    return None


SESSION_MINTING = RateLimit("sessions", 120, timedelta(minutes=1))
GRANT_MINTING = RateLimit("grants", 120, timedelta(minutes=1))

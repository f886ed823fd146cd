"""Fixed-window rate limits kept in the store, so every instance counts against the same budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from wattfare.server.errors import ApiError
from wattfare.server.store import Store


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` hits per `period` for one bucket (e.g. sessions minted per app per minute)."""

    name: str
    limit: int
    period: timedelta

    async def check(self, store: Store, key: str, now: datetime) -> None:
        """Count a hit for `key`; raise 429 `rate_limited` with `Retry-After` when over the limit."""
        seconds = int(self.period.total_seconds())
        start_ts = math.floor(now.timestamp() / seconds) * seconds
        window_start = datetime.fromtimestamp(start_ts, tz=now.tzinfo)
        hits = await store.count_hit(f"{self.name}:{key}", window_start)
        if hits > self.limit:
            retry_after = max(1, math.ceil(start_ts + seconds - now.timestamp()))
            raise ApiError(
                "rate_limited",
                f"Too many requests: at most {self.limit} per {seconds} s for {self.name}.",
                headers={"Retry-After": str(retry_after)},
            )


SESSION_MINTING = RateLimit("sessions", 120, timedelta(minutes=1))

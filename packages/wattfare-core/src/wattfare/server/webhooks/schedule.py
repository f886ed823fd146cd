"""When a failed delivery is tried again: exponential backoff for about a day, then the endpoint is failing.

The delays are the Standard Webhooks reference schedule (as Svix sends): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h after the first attempt, 27.6 hours in all, so an endpoint down for a night's deploy still gets everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta

RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)


def next_attempt(attempts_made: int, now: datetime, delays: tuple[timedelta, ...] = RETRY_DELAYS) -> datetime | None:
    """When to try again after `attempts_made` failed attempts (None: give up, the endpoint is failing)."""
    if attempts_made < 1:
        raise ValueError("next_attempt is asked after a failed attempt: attempts_made is at least 1")
    if attempts_made > len(delays):
        return None
    return now + delays[attempts_made - 1]

"""The console's read of an app's month: its biggest spenders and the month's headline, at a bounded cost.

The app page of /developers once summed the ledger of the whole app-month and listed every user (0.8 s at 2M rows
and 100,000 users on PostgreSQL, with 100,000 rows of HTML). It now ranks users by their counters, which hold one
row per connection and window and whose `spent` is the ledger's sum of that connection-window (`rebuild_counters`
keeps the invariant), and reads the ledger of the chosen few alone. The full report is `GET /usage`, in pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from wattfare.server.store.records import Mode


@dataclass(frozen=True, slots=True)
class UserMonth:
    """One app user's window as the console shows it: the ledger's totals of their connection in that window.

    Attributes:
        app_user_id: the app's id of the user (a grant's `grant:<id>` too).
        requests, prompt_tokens, completion_tokens, cost: the window's totals (cost in nano-USD).
        embedding_requests, embedding_cost: the part of them that called `embeddings`.
    """

    app_user_id: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: int
    embedding_requests: int
    embedding_cost: int


@dataclass(frozen=True, slots=True)
class AppMonth:
    """An app's window in one mode, for the console.

    Attributes:
        users: the `top` users by spend (most first, ties by app user id), then the users asked for by name that
            are not among them; all ordered by cost, then app user id. A user with a counter but nothing in the
            ledger for the window (a hold released or still open) is left out unless asked for by name.
        spenders: how many of the app's users spent anything in the window.
        spent: what they spent in all (nano-USD).
    """

    users: list[UserMonth]
    spenders: int
    spent: int


class ConsoleUsage(Protocol):
    """The developer console's usage card: bounded by what it shows, not by the app's size."""

    async def app_month(self, app_id: str, mode: Mode, window_key: str, *, top: int, named: Sequence[str]) -> AppMonth:
        """The `top` biggest spenders of `app_id` in `mode` and window `window_key`, the users `named`, and the totals.

        Window means the counters' window (the month of the cap a request counted against; a grant's: the month it
        was made in), so each user's cost is exactly their `spent`, and the headline the sum of everyone's.
        """
        ...

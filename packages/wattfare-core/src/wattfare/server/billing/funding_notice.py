"""Telling the app that a user's funding stopped paying: `funding.invalid`, once per connection a month.

Said from where the refusal is decided (the provider refused the member's own key, or their ceiling key at its
limit; their linked key cannot be opened), never failing the request that found it: the answer to the app is
`funding_invalid` either way, and a store outage only costs the announcement.
"""

from __future__ import annotations

import logging
from datetime import datetime

from wattfare.server.billing.hold import Hold
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.webhook_protocols import Webhooks
from wattfare.server.store.webhook_records import FundingProblem

log = logging.getLogger("wattfare.server")


async def announce_funding_invalid(store: Webhooks, hold: Hold, reason: FundingProblem, now: datetime) -> None:
    """Write `funding.invalid` for the hold's connection, unless it was written this month already."""
    try:
        await store.note_funding_invalid(hold.connection.id, hold.window.key, reason, now)
    except StoreUnavailableError as exc:
        log.error("funding.invalid for connection %s could not be recorded: %s", hold.connection.id, exc)

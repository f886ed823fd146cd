"""Reconciliation: each member's ceiling key's usage at the provider, compared with Wattfare's ledger for the month.

Every request on a member's ceiling key is one Wattfare metered, so the provider's `usage_monthly` of the key
and the credits the ledger charged the member this month should agree, up to `reconciliation_tolerance` (the
provider's float rounding, Wattfare's upper-bound charges when usage was missing, requests in flight). A
difference beyond it means one of them counted money the other did not:

- the provider counted more: requests spent money Wattfare did not charge (a metering bug, a settlement lost,
  a key used outside Wattfare); the ceiling kept it below the limit, but the operator paid the difference;
- the ledger counted more: Wattfare charged more than the provider billed (bounds charged for missing usage,
  prices out of date), which members paid and may be owed.

`wattfare reconcile` prints the comparison; the server runs it every `WATTFARE_RECONCILE_SECONDS` and logs each
difference beyond the tolerance at error level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wattfare.metering import window_containing
from wattfare.metering.ceiling import reconciliation_tolerance
from wattfare.server.billing.provider_ceiling import KeyManager
from wattfare.server.store.account_protocols import Credits, ProviderCeilings
from wattfare.server.upstream.openrouter_keys import KeyManagementError

log = logging.getLogger("wattfare.reconcile")


class ReconciledStore(ProviderCeilings, Credits, Protocol):
    """What reconciliation reads: the ceiling keys, the month's charges and the credits held in flight."""


@dataclass(frozen=True, slots=True)
class KeyComparison:
    """One member's key: the provider's usage this month beside the ledger's (nano-USD).

    Attributes:
        member_id: whose key.
        key_hash: the provider's id of the key.
        provider_usage: the provider's `usage_monthly` of the key, or None when it could not be read.
        ledger: the credits Wattfare charged the member this month.
        tolerance: the difference allowed (see `wattfare.metering.ceiling.reconciliation_tolerance`).
    """

    member_id: str
    key_hash: str
    provider_usage: int | None
    ledger: int
    tolerance: int

    @property
    def difference(self) -> int:
        """The provider's usage minus the ledger's (positive: the provider counted more)."""
        return 0 if self.provider_usage is None else self.provider_usage - self.ledger

    @property
    def beyond_tolerance(self) -> bool:
        """Whether the two disagree by more than the tolerance (an unreadable key counts as disagreeing)."""
        return self.provider_usage is None or abs(self.difference) > self.tolerance


async def reconcile(store: ReconciledStore, keys: KeyManager, now: datetime) -> list[KeyComparison]:
    """Compare every member's ceiling key with the ledger for the month of `now`."""
    window = window_containing(now)
    compared: list[KeyComparison] = []
    for key in await store.ceiling_keys():
        budget = await store.ceiling_budget(key.member_id, window.key, window.start, window.end)
        in_flight = (await store.credit_balance(key.member_id)).reserved
        try:
            usage: int | None = (await keys.state(key.key_hash)).usage_monthly
        except KeyManagementError as exc:
            log.warning("the provider's usage of %s's key could not be read: %s", key.member_id, exc)
            usage = None
        tolerance = reconciliation_tolerance(budget.charged_this_month, in_flight)
        compared.append(KeyComparison(key.member_id, key.key_hash, usage, budget.charged_this_month, tolerance))
    return compared


async def report(store: ReconciledStore, keys: KeyManager, now: datetime) -> list[KeyComparison]:
    """Reconcile, logging each difference beyond the tolerance at error level (the periodic job)."""
    compared = await reconcile(store, keys, now)
    for found in compared:
        if found.beyond_tolerance:
            log.error(
                "reconciliation: member %s's key %s shows %s nano-USD at the provider and %d in the ledger this month "
                "(difference %s, tolerance %d)",
                found.member_id,
                found.key_hash,
                "unreadable" if found.provider_usage is None else found.provider_usage,
                found.ledger,
                found.difference,
                found.tolerance,
            )
    return compared

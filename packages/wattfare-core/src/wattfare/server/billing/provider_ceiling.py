"""The provider ceiling: a hard monthly limit at OpenRouter behind Wattfare's own meter.

Wattfare's meter is exact, but it is software over a database: a metering bug, a store outage handled wrongly or
an operator's mistake could let money through with nothing behind it. So when the operator configures an
OpenRouter management key (`WATTFARE_OPENROUTER_MANAGEMENT_KEY`), each credit-funded member's requests go out on
a key of their own, made by that management key, whose monthly `limit` is what the member may spend through
Wattfare this month (`wattfare.metering.ceiling`: this month's charges plus the lower of their credits left and
their active caps' headroom). OpenRouter refuses (402) whatever would pass it, mid-stream included: the proxy
answers that member `funding_invalid`, and since the meter should have stopped them first, the hit is a metric,
an error log line, and a note on their `/account` (`reached`).

Keeping limits in step. The limit is derived from the ledger, credits and caps, which are the truth, so it is
synced level-triggered rather than through an outbox of events: `sync_all` (every `WATTFARE_CEILING_SYNC_SECONDS`,
and at start) recomputes every funded member's ceiling and tells OpenRouter only what differs from what it last
accepted; a crash between a change and its sync loses nothing, since the next run recomputes from the truth.
After a change a member makes or is given (credits granted, a connection approved, a cap changed, one revoked),
the handler also syncs that member at once, best-effort (`after_change`): the ceiling rises before the member's
next request, and a failure is logged and left to the periodic run. None of this is on the proxy's request path.
Each call sets absolute values (limit, disabled), so repeating one changes nothing: the sync is idempotent.

Without a management key nothing here runs and requests use the operator's key, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from wattfare.metering import nanos_to_usd, window_containing
from wattfare.metering.ceiling import Ceiling, ceiling_for
from wattfare.server.billing.funding_notice import announce_funding_invalid
from wattfare.server.billing.hold import Hold
from wattfare.server.billing.key_vault import KeyVault
from wattfare.server.observability import metrics
from wattfare.server.periodic import Periodic
from wattfare.server.store.account_protocols import MemberConnections, ProviderLinks
from wattfare.server.store.account_protocols import ProviderCeilings as CeilingRows
from wattfare.server.store.account_records import CeilingKey
from wattfare.server.store.protocols import Metering, StoreUnavailableError
from wattfare.server.store.records import Connection
from wattfare.server.store.webhook_protocols import Webhooks
from wattfare.server.upstream.openrouter_keys import CreatedKey, KeyManagementError, KeyState

log = logging.getLogger("wattfare.ceiling")

# A change's immediate sync waits this long at most; past it the periodic run finishes the job.
_AFTER_CHANGE_TIMEOUT_SECONDS = 5.0


class CeilingStore(CeilingRows, Metering, ProviderLinks, MemberConnections, Webhooks, Protocol):
    """What the ceiling reads and writes: its keys, the members' budgets, connections and linked keys."""


class KeyManager(Protocol):
    """The provider's key management API (`upstream.openrouter_keys.OpenRouterKeys`)."""

    async def create(self, name: str, limit: int) -> CreatedKey:
        """Make a key with a monthly limit."""
        ...

    async def update(self, key_hash: str, *, limit: int, disabled: bool) -> KeyState:
        """Set a key's monthly limit and state."""
        ...

    async def state(self, key_hash: str) -> KeyState:
        """A key's limit, this month's usage and state."""
        ...

    async def delete(self, key_hash: str) -> None:
        """Delete a key."""
        ...

    async def aclose(self) -> None:
        """Let go of the connection."""
        ...


class ProviderCeilings:
    """Makes each credit-funded member's provider key and keeps its hard monthly limit in step (see the module)."""

    def __init__(
        self, store: CeilingStore, vault: KeyVault, keys: KeyManager | None, clock: Callable[[], datetime]
    ) -> None:
        """Keep ceilings of `store`'s members through `keys` (None: no management key, nothing to do)."""
        self._store = store
        self._vault = vault
        self._keys = keys
        self._clock = clock
        self._syncer: Periodic | None = None

    @property
    def enabled(self) -> bool:
        """Whether the operator configured a management key (credit-funded requests then need a ceiling key)."""
        return self._keys is not None

    @property
    def keys(self) -> KeyManager | None:
        """The management API, for reconciliation."""
        return self._keys

    async def wanted(self, member_id: str, now: datetime) -> Ceiling:
        """The ceiling a member's key should carry now (see `wattfare.metering.ceiling`)."""
        window = window_containing(now)
        budget = await self._store.ceiling_budget(member_id, window.key, window.start, window.end)
        return ceiling_for(
            charged_this_month=budget.charged_this_month,
            # A member whose own key is linked pays with it: nothing goes through their credits.
            credits_left=0 if budget.linked_own_key else budget.credits_left,
            caps_headroom=budget.caps_headroom,
        )

    async def sync_member(self, member_id: str) -> Ceiling | None:
        """Make the member's key (once there is something to spend) or bring its limit in step; None if disabled.

        Raises `KeyManagementError` when the provider fails; nothing is recorded then, so the next run retries.
        """
        if self._keys is None:
            return None
        now = self._clock()
        wanted = await self.wanted(member_id, now)
        key = await self._store.ceiling_key(member_id)
        if key is None:
            if wanted.disabled:
                return wanted  # nothing to spend: no key is needed yet
            created = await self._keys.create(f"wattfare member {member_id}", wanted.limit)
            key_hash = created.hash
            sealed = CeilingKey(member_id, key_hash, self._vault.seal(created.key, member_id), wanted.limit, False, now)
            if await self._store.put_ceiling_key(sealed):
                log.info("made the ceiling key of %s with a limit of %d nano-USD", member_id, wanted.limit)
                return wanted
            # Another process made one first: its key stays, this one goes.
            await self._keys.delete(key_hash)
            key = await self._store.ceiling_key(member_id)
            if key is None:
                return wanted
        if key.monthly_limit == wanted.limit and key.disabled == wanted.disabled:
            return wanted
        await self._keys.update(key.key_hash, limit=wanted.limit, disabled=wanted.disabled)
        await self._store.ceiling_synced(member_id, wanted.limit, wanted.disabled, now)
        log.info(
            "the ceiling of %s is now %d nano-USD%s", member_id, wanted.limit, " (disabled)" if wanted.disabled else ""
        )
        return wanted

    async def sync_all(self) -> int:
        """Sync every funded member (one failing does not stop the others); how many were synced."""
        if self._keys is None:
            return 0
        synced = 0
        for member_id in await self._store.ceiling_members():
            try:
                await self.sync_member(member_id)
            except KeyManagementError as exc:
                log.warning("the ceiling of %s could not be synced: %s", member_id, exc)
                continue
            synced += 1
        return synced

    async def after_change(self, member_id: str | None) -> None:
        """Sync one member at once after a change to their credits or caps; best-effort, never raises."""
        if self._keys is None or member_id is None:
            return
        try:
            await asyncio.wait_for(self.sync_member(member_id), _AFTER_CHANGE_TIMEOUT_SECONDS)
        except (KeyManagementError, StoreUnavailableError, TimeoutError) as exc:
            log.warning("the ceiling of %s is left to the periodic sync: %s", member_id, exc)

    async def after_connection_change(self, connection_id: str | None) -> None:
        """`after_change` for the member who funds a connection (when one does)."""
        if self._keys is None or connection_id is None:
            return
        funding = await self._store.connection_funding(connection_id)
        await self.after_change(funding.member_id if funding is not None else None)

    async def reached(self, hold: Hold) -> None:
        """The provider refused a request at the member's ceiling: the backstop caught what the meter did not."""
        member_id = hold.funding.member_id if hold.funding is not None else None
        metrics.provider_ceiling_reached()
        log.error(
            "provider ceiling reached: request %s of member %s was refused by the provider at its hard limit; "
            "the meter admitted it (run `wattfare reconcile`)",
            hold.id,
            member_id,
        )
        if member_id is None:
            return
        try:
            await self._store.record_ceiling_hit(member_id, hold.window.key, self._clock())
        except StoreUnavailableError as exc:
            log.error("the ceiling hit of %s could not be recorded: %s", member_id, exc)
        await announce_funding_invalid(self._store, hold, "ceiling_reached", self._clock())

    def start(self, every_seconds: float) -> None:
        """Sync every funded member now and every `every_seconds` (only with a management key)."""
        if self._keys is not None:
            self._syncer = Periodic(self.sync_all, every_seconds, what="the sync of provider ceilings", log=log)
            self._syncer.start()

    async def stop(self) -> None:
        """Stop syncing and close the management client."""
        if self._syncer is not None:
            await self._syncer.stop()
        if self._keys is not None:
            await self._keys.aclose()


async def own_ceiling_refusal(
    store: CeilingStore, member_id: str, cap: int, window_key: str, *, replacing: Callable[[Connection], bool]
) -> str | None:
    """Why a live cap of `cap` would pass the monthly limit the member's own OpenRouter key carries (else None).

    The member chose that limit when linking ("never more than $X a month through Wattfare"); their active live
    caps, the connection being set (`replacing`) counted at its new cap, must add up to no more than it.
    """
    linked = await store.provider_key(member_id)
    if linked is None or linked.monthly_limit is None:
        return None
    others = sum(
        held.connection.cap
        for held in await store.member_connections(member_id, window_key)
        if held.connection.state == "active" and held.connection.mode == "live" and not replacing(held.connection)
    )
    if others + cap <= linked.monthly_limit:
        return None
    room = max(0, linked.monthly_limit - others)
    return (
        f"Your OpenRouter key allows ${nanos_to_usd(linked.monthly_limit):.2f} a month through Wattfare, and your "
        f"other apps' caps add up to ${nanos_to_usd(others):.2f}: set a cap of at most ${nanos_to_usd(room):.2f}, "
        "lower another app's cap, or relink OpenRouter with a higher limit."
    )

"""The metering service: the cap guarantee, step by step, over the store.

Decisions are pure (`wattfare.metering`); this module only sequences them with the store's two atomic
writes: reserve (conditional on the cap) and settle (swap the hold for the charge, append the ledger).
A reserve hands its hold to a `HeldRequest` (see `hold`), which alone ends it; the meter writes the
settlement it is given, on a task no caller's cancellation can abort, and keeps it for later when the
store is unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from wattfare.metering import Allowed, Budget, decide_admission, window_containing
from wattfare.server.access.keys import new_id, new_request_id
from wattfare.server.billing.grants import grant_refusal, grant_spent_refusal
from wattfare.server.billing.hold import HeldRequest, Hold, Refusal
from wattfare.server.billing.pricebook import PricedModel
from wattfare.server.observability import metrics
from wattfare.server.periodic import Periodic
from wattfare.server.store.grant_records import Grant
from wattfare.server.store.protocols import MeteringStore, StoreUnavailableError
from wattfare.server.store.records import Connection, Endpoint, KeyRecord, NewHold, Settled, Settlement

log = logging.getLogger("wattfare.meter")

Clock = Callable[[], datetime]

# How long stopping waits for settlements still being written.
_STOP_GRACE_SECONDS = 10.0
# A busy request polls its budget at growing intervals, from the first to the last.
_BUSY_FIRST_PAUSE_SECONDS = 0.02
_BUSY_LAST_PAUSE_SECONDS = 0.25
# A reserve that loses a race (another request changed the counters between our read and our conditional
# write) re-reads and decides again; after this many tries the request is refused rather than spun on.
_RESERVE_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class OutputAllowances:
    """The `max_tokens` sent and held for a request that gave none, unless its app set its own."""

    chat: int = 4096
    reasoning: int = 25_000

    def for_model(self, model: PricedModel, app_allowance: int | None) -> int:
        """The allowance of a request to `model` from an app whose own allowance is `app_allowance`."""
        if app_allowance is not None:
            return app_allowance
        return self.reasoning if model.reasons else self.chat


class Meter:
    """Reserve before a request, settle after it, sweep what dead requests left behind."""

    def __init__(
        self,
        store: MeteringStore,
        clock: Clock,
        *,
        hold_ttl: timedelta,
        allowances: OutputAllowances | None = None,
        busy_wait: timedelta = timedelta(seconds=2),
    ) -> None:
        """Meter against `store`, reading time only from `clock`."""
        self._store = store
        self._clock = clock
        self._ttl = hold_ttl
        self._allowances = allowances or OutputAllowances()
        self._busy_wait = busy_wait.total_seconds()
        self._sweeper: Periodic | None = None
        # Holds of requests running in this process: renewed while they run, so only a hold whose process
        # died can expire (a stream may outlast the TTL; its hold must not be swept from under it). A hold
        # leaves this set only once its settlement has committed.
        self._live: set[str] = metrics.LiveHolds()  # kept in `wattfare_holds_in_flight`
        # Settlements being written: the meter, not the request, keeps them alive until they finish.
        self._writing: set[asyncio.Task[Settled | None]] = set()
        # Settlements the store could not take (it was unavailable): written by the sweep once it answers.
        self._deferred: dict[str, Settlement] = {}

    async def connection_for(self, key: KeyRecord, app_user_id: str) -> Connection | Refusal:
        """The active connection of this app user; test keys auto-approve one on first use."""
        connection = await self._store.get_connection(key.app_id, key.mode, app_user_id)
        if connection is None and key.mode == "test":
            requested = await self._store.requested_cap(key.app_id, key.mode, app_user_id)
            cap = requested if requested is not None else key.default_test_cap
            connection = await self._store.ensure_connection(
                new_id("conn"), key.app_id, app_user_id, "test", cap, self._clock()
            )
        if connection is None or connection.state != "active":
            return Refusal("not_connected", f"User {app_user_id!r} has not connected an AI budget to this app.")
        return connection

    async def reserve(
        self,
        key: KeyRecord,
        app_user_id: str,
        model: PricedModel,
        *,
        prompt_token_bound: int,
        requested_max_tokens: int | None,
        choices: int = 1,
        images: int = 0,
        request_id: str | None = None,
        endpoint: Endpoint = "chat.completions",
        grant: Grant | None = None,
    ) -> HeldRequest | Refusal:
        """Hold the worst-case cost of a request, or say why it may not run.

        With `n` choices every choice may use `max_tokens`, so the completion price is scaled by `choices`.
        An embedding request writes nothing: it asks `requested_max_tokens=EMBEDDING_OUTPUT_TOKENS` (0), so its
        hold is its input bound alone. The hold records the `endpoint`, which its ledger row books.
        The hold comes owned by a `HeldRequest`: enter it (`async with`) around everything the request does.
        With a `grant` (found by its token), the request is metered on the grant's own connection and window,
        and its reserve counts one of the grant's requests in the same write (see `billing.grants`).
        """
        now = self._clock()
        window = window_containing(now) if grant is None else grant.window
        if grant is not None:
            app_user_id = grant.app_user_id
        prices = model.pricing.worst_case(now, prompt_token_bound)
        if choices > 1:
            prices = replace(prices, completion=prices.completion * choices)
        # One id for every attempt: a lost race writes nothing, so the id is still free on the next try.
        hold_id = request_id or new_request_id()
        allowance = self._allowances.for_model(model, key.output_allowance)
        loop = asyncio.get_running_loop()
        busy_until = loop.time() + self._busy_wait
        pause = _BUSY_FIRST_PAUSE_SECONDS
        attempts = 0
        while attempts < _RESERVE_ATTEMPTS:
            attempts += 1
            if grant is not None:
                # Read again after a lost race: the race may have been for the grant's last request.
                current = grant if attempts == 1 else await self._store.get_grant(grant.id)
                refusal = grant_refusal(current, now)
                if refusal is not None:
                    return refusal
            snapshot = await self._store.budget(key.app_id, key.mode, app_user_id, window.key)
            if grant is not None and (snapshot is None or snapshot.connection.state != "active"):
                return Refusal("grant_invalid", "The member revoked this grant.")  # since it was read
            if snapshot is None or snapshot.connection.state != "active":
                connection = await self.connection_for(key, app_user_id)
                if isinstance(connection, Refusal):
                    return connection
                continue
            # Live connections approved by a member are paid by them: their own provider key when linked, else
            # their credits, which then bound the request as tightly as the cap does.
            funding = await self._store.connection_funding(snapshot.connection.id) if key.mode == "live" else None
            credited = funding is not None and funding.provider_key is None  # as `Hold.credited`
            affordable = snapshot.remaining
            if funding is not None and credited:
                affordable = min(affordable, funding.credits_available)
            decision = decide_admission(
                Budget(
                    cap=snapshot.spent + snapshot.reserved + affordable,
                    spent=snapshot.spent,
                    reserved=snapshot.reserved,
                ),
                prices,
                prompt_token_bound=prompt_token_bound,
                requested_max_tokens=requested_max_tokens,
                model_max_output=model.max_output_tokens,
                output_allowance=allowance,
                images=images,
            )
            if not isinstance(decision, Allowed) and decision.code == "budget_busy":
                # Holds of this user's requests in flight are in the way; they mostly settle for far less than
                # they hold, so wait for them a little (a poll is one indexed read), then say "retry".
                if loop.time() + pause > busy_until:
                    return Refusal(
                        "budget_busy",
                        "Other requests of this user hold their budget right now; retry shortly.",
                        retry_after_seconds=1,
                    )
                await asyncio.sleep(pause)
                pause = min(2 * pause, _BUSY_LAST_PAUSE_SECONDS)
                attempts -= 1  # waiting is not losing a race
                continue
            if not isinstance(decision, Allowed):
                if affordable < snapshot.remaining:
                    return Refusal(
                        "funding_invalid",
                        "The user's Wattfare credits are used up: they can add funding in their Wattfare account.",
                    )
                if grant is not None:
                    return grant_spent_refusal()
                return Refusal("budget_exceeded", "Spending cap reached for this period.", window.end)
            new_hold = NewHold(
                id=hold_id,
                connection_id=snapshot.connection.id,
                window_key=window.key,
                amount=decision.reserve,
                model=model.id,
                created_at=now,
                expires_at=now + self._ttl,
                endpoint=endpoint,
                grant_id=grant.id if grant is not None else None,
            )
            try:
                if funding is not None and credited:
                    held = await self._store.try_reserve_credited(new_hold, funding.member_id)
                else:
                    held = await self._store.try_reserve(new_hold)
            except asyncio.CancelledError:
                # A store may group commits, so the hold can commit after its caller was cancelled: give it
                # back rather than let it expire at its full amount (a no-op if it never committed).
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._store.settle(Settlement(hold_id, 0, kind="released"), self._clock()))
                raise
            if held:
                self._live.add(hold_id)
                metrics.reserved(key.mode, decision.reserve)
                hold = Hold(
                    id=hold_id,
                    connection=snapshot.connection,
                    window=window,
                    amount=decision.reserve,
                    model=model,
                    max_tokens=decision.max_tokens,
                    clamped=decision.clamped,
                    remaining_before=snapshot.remaining,
                    started_at=now,
                    prompt_token_bound=prompt_token_bound,
                    images=images,
                    funding=funding,
                    grant_id=new_hold.grant_id,
                )
                return HeldRequest(self, hold)
        if grant is not None:
            return grant_spent_refusal()
        return Refusal("budget_exceeded", "Spending cap reached for this period.", window.end)

    def begin_settlement(self, hold: Hold, settlement: Settlement) -> asyncio.Task[Settled | None]:
        """Start writing a hold's settlement on a task of its own (see `HeldRequest`).

        The task raises `StoreUnavailableError` when the store cannot take it; the settlement is then kept,
        its hold renewed, and the sweep writes it once the store answers again.
        """
        task = asyncio.get_running_loop().create_task(self._write_settlement(hold, settlement))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        return task

    async def _write_settlement(self, hold: Hold, settlement: Settlement) -> Settled | None:
        # The hold knows whether it holds credits, so the store need not look for a credit hold that is not there.
        settlement = replace(settlement, holds_credits=hold.credited)
        try:
            settled = await self._store.settle(settlement, self._clock())
        except StoreUnavailableError:
            self._deferred[settlement.hold_id] = settlement
            raise
        except Exception:
            # A bug, not an outage: retrying cannot help. The hold is left to expire like a dead request's.
            log.exception("settling %s failed", settlement.hold_id)
            self._live.discard(settlement.hold_id)
            raise
        self._live.discard(settlement.hold_id)
        if settled is not None:
            lived = (self._clock() - hold.started_at).total_seconds()
            metrics.settled(settled.mode or "none", settlement.kind, settled.charged, settled.absorbed, lived)
        return settled

    async def _write_deferred(self) -> int:
        """Write the settlements the store could not take earlier; stop at the first that still fails."""
        written = 0
        for hold_id, settlement in list(self._deferred.items()):
            try:
                settled = await self._store.settle(settlement, self._clock())
            except StoreUnavailableError:
                break
            if settled is not None:
                metrics.settled(settled.mode or "none", settlement.kind, settled.charged, settled.absorbed, None)
            del self._deferred[hold_id]
            self._live.discard(hold_id)
            written += 1
        if written:
            log.info("wrote %d settlements deferred by a store outage", written)
        return written

    async def sweep(self) -> int:
        """Settle holds whose request died with its server, conservatively (the reserved amount)."""
        swept = 0
        if self._live:
            await self._store.renew_holds(list(self._live), self._clock() + self._ttl)
        if self._deferred:
            await self._write_deferred()
        for dead in await self._store.expired_holds(self._clock()):
            settled = await self._store.settle(Settlement(dead.id, dead.amount, kind="expired"), self._clock())
            if settled is not None:
                swept += 1
                metrics.settled(settled.mode or "none", "expired", settled.charged, settled.absorbed, None)
        if swept:
            log.info("settled %d expired holds at their reserved amount", swept)
        return swept

    def start_sweeping(self, every_seconds: float) -> None:
        """Renew live holds and sweep dead ones every `every_seconds` (a third of the TTL when shorter)."""
        # Live holds must be renewed well before their deadline, and a dead hold should not outlive its TTL
        # by a whole period. The floor keeps a zero TTL from spinning the loop.
        period = max(0.5, min(every_seconds, self._ttl.total_seconds() / 3))

        self._sweeper = Periodic(self.sweep, period, what="the sweep of holds", log=log)
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop sweeping, once the settlements being written have finished (or a grace period passed)."""
        if self._sweeper is not None:
            await self._sweeper.stop()
        if self._writing:
            await asyncio.wait(set(self._writing), timeout=_STOP_GRACE_SECONDS)
        if self._deferred:
            with contextlib.suppress(Exception):
                await self._write_deferred()

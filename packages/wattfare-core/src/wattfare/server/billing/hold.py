"""A request's hold, and the one object that owns it from the reserve to the settle.

`Meter.reserve` hands every admitted request a `HeldRequest`; the proxy enters it (`async with held:`)
around everything the request does after the reserve, streamed or not. Whatever ends the request, the
hold ends exactly once, by one of four settlements:

    settle(usage)      the upstream reported usage: its cost (or, if the usage cannot be believed, the bound
                       of what came back: see `trusted_usage`)
    settle_output()    no usage came (hang-up, revocation, upstream failure mid-answer): the bound of what
                       the model wrote that came back, plus the prompt bound (`output_bytes`)
    charge_whole()     the upstream ran past the `max_tokens` it was sent: its usage is untrusted
    release()          nothing reached a model: nothing is charged

and when the block exits without one, the exit picks: `settle_output()` once the upstream accepted the
request (`answered`), else `release()`. So no exit path, hang-up, cancellation or exception, can leave a
hold to expire at its full amount; only a dead process's holds expire.

The settlement's write runs as a task of the meter, awaited through cancellation: a client that hangs up
while the ledger is being written cannot abort the write half-way, and nothing counts as ended until the
write has committed. If the store is unavailable the meter keeps the settlement, renews its hold and
writes it once the store answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime
from types import TracebackType
from typing import Literal, Protocol

from wattfare.metering import MeteredUsage, PriceSet, Window, cost_of, trusted_usage
from wattfare.server.billing.pricebook import PricedModel
from wattfare.server.store.account_records import ConnectionFunding
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.records import Connection, Settled, Settlement

log = logging.getLogger("wattfare.hold")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request may not spend: the domain's value, turned into HTTP by the proxy."""

    code: Literal["not_connected", "budget_exceeded", "budget_busy", "funding_invalid", "grant_invalid"]
    message: str
    resets_at: datetime | None = None
    retry_after_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """A hold in force for one request."""

    id: str
    connection: Connection
    window: Window
    amount: int
    model: PricedModel
    max_tokens: int | None
    clamped: bool
    remaining_before: int
    started_at: datetime
    prompt_token_bound: int
    images: int = 0
    funding: ConnectionFunding | None = None
    # The one-time grant the request counts against, if any.
    grant_id: str | None = None

    @property
    def credited(self) -> bool:
        """Whether the member's Wattfare credits pay for this request (a credit hold was taken with it)."""
        return self.funding is not None and self.funding.provider_key is None

    @property
    def member_key(self) -> str | None:
        """The member's encrypted provider key when it pays for this request (else the operator's key does)."""
        return self.funding.provider_key if self.funding is not None else None

    @property
    def ceiling_key(self) -> str | None:
        """When credits pay: the member's encrypted ceiling key (`provider_ceiling`), which the request goes out on."""
        return self.funding.ceiling_key if self.funding is not None and self.credited else None

    def prices_at(self, prompt_tokens: int) -> PriceSet:
        """The prices that applied to the request (at its start, for its actual prompt size)."""
        return self.model.pricing.at(self.started_at, prompt_tokens)

    def output_bound(self, output_bytes: int) -> Settlement:
        """An upper bound of what the request used, having written `output_bytes` of answer.

        No token is shorter than a byte, so the prompt bound and the bytes written bound the tokens; each is
        priced at the highest rate it could bill at.
        """
        usage = MeteredUsage(prompt_tokens=self.prompt_token_bound, completion_tokens=output_bytes, images=self.images)
        cost = cost_of(usage, self.model.pricing.worst_case(self.started_at, self.prompt_token_bound))
        return Settlement(
            self.id, cost, prompt_tokens=usage.prompt_tokens, completion_tokens=output_bytes, kind="estimated"
        )


class Settler(Protocol):
    """Writes settlements (the `Meter`): each write runs on as a task of its own, whoever awaits it."""

    def begin_settlement(self, hold: Hold, settlement: Settlement) -> asyncio.Task[Settled | None]:
        """Start writing `settlement`; the task raises `StoreUnavailableError` if the store is down."""
        ...


class HeldRequest:
    """The owner of one admitted request's hold: enter it around the request; it ends the hold exactly once."""

    __slots__ = ("_ending", "_settler", "answered", "hold", "output_bytes")

    def __init__(self, settler: Settler, hold: Hold) -> None:
        """Own `hold`, settling it through `settler`."""
        self._settler = settler
        self.hold = hold
        # Set once the upstream accepted the request (HTTP 200): from then on the model may be running, and an
        # exit without a settlement charges what came back (at least the prompt), not nothing.
        self.answered = False
        # UTF-8 bytes of what the model wrote that came back through Wattfare (relayed, or the whole answer).
        self.output_bytes = 0
        self._ending: asyncio.Task[Settled | None] | None = None

    @property
    def ended(self) -> bool:
        """Whether the hold's settlement has committed (False while it is being written, or deferred)."""
        ending = self._ending
        return ending is not None and ending.done() and not ending.cancelled() and ending.exception() is None

    async def settle(self, usage: MeteredUsage) -> Settled | None:
        """Charge what the upstream reported the request used (the output bound when that cannot be believed)."""
        if not trusted_usage(usage, relayed_bytes=self.output_bytes):
            log.warning("request %s: the upstream's usage cannot be right; charging the output bound", self.hold.id)
            return await self._end(self.hold.output_bound(self.output_bytes))
        usage = replace(usage, images=self.hold.images)  # the upstream does not count them; the request did
        cost = cost_of(usage, self.hold.prices_at(usage.prompt_tokens))
        return await self._end(
            Settlement(self.hold.id, cost, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
        )

    async def settle_output(self) -> Settled | None:
        """Charge an upper bound of what the request used, from what came back (`output_bytes`)."""
        return await self._end(self.hold.output_bound(self.output_bytes))

    async def charge_whole(self) -> Settled | None:
        """Charge the whole hold: the upstream ran past the ceiling it was sent, so its usage is untrusted."""
        return await self._end(Settlement(self.hold.id, self.hold.amount))

    async def release(self) -> Settled | None:
        """Give the whole hold back: the request never reached a model."""
        return await self._end(Settlement(self.hold.id, 0, kind="released"))

    async def __aenter__(self) -> HeldRequest:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._ending is None:
                await (self.settle_output() if self.answered else self.release())
            else:
                await _through_cancellation(self._ending)
        except StoreUnavailableError as failure:
            # The meter keeps the settlement and writes it once the store answers; the request's own outcome
            # (and any exception it is ending with) stands.
            log.error("settling %s is deferred until the store is back: %s", self.hold.id, failure)

    async def _end(self, settlement: Settlement) -> Settled | None:
        if self._ending is None:
            self._ending = self._settler.begin_settlement(self.hold, settlement)
        # A second ending (the exit after an explicit settle, a racing path) waits for the first: exactly once.
        return await _through_cancellation(self._ending)


async def _through_cancellation(write: Awaitable[Settled | None]) -> Settled | None:
    """Await `write` to its end even if the caller is cancelled meanwhile; then re-raise the cancellation.

    A shield alone would let the caller go on (and its exit path read the hold as unsettled) while the write
    still runs; the ledger must be written before anyone reads the outcome.
    """
    task = asyncio.ensure_future(write)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.cancelled():
                raise
            cancelled = exc
        except Exception:
            break  # the write failed: its exception is raised below
    if cancelled is not None:
        raise cancelled
    return task.result()

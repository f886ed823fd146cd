"""The delivery loop every process runs: claim what is due, send it, record how it went.

Claims are leases (`store.sql.webhooks`), so instances share the work without sending an event twice, and a
process killed mid-send leaves its claims to expire and be sent again by whoever claims next, under the same
`webhook-id`. A 2xx answer delivers; anything else (another status, a timeout, a refused connection, a redirect,
which is not followed) is retried on `schedule.RETRY_DELAYS`, then the endpoint is marked failing. The same loop
sends members' threshold emails, which the settle that crossed the threshold wrote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from wattfare.server.billing.key_vault import KeyVault, VaultError
from wattfare.server.mail.letters import threshold_letter
from wattfare.server.mail.mailer import Mailer
from wattfare.server.periodic import Periodic
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.records import Mode
from wattfare.server.store.webhook_protocols import MemberAlerts, Webhooks
from wattfare.server.store.webhook_records import DueAlert, DueDelivery
from wattfare.server.text_formats import cents_text, usd_text
from wattfare.server.webhooks.endpoints import signing_secrets
from wattfare.server.webhooks.public_addresses import PublicOnlyTransport, Resolver, system_resolver
from wattfare.server.webhooks.schedule import RETRY_DELAYS, next_attempt
from wattfare.server.webhooks.signing import signed_headers

log = logging.getLogger("wattfare.server")

BATCH = 20  # deliveries (and emails) claimed per round; sent concurrently
ALERT_ATTEMPTS = 8  # an alert email is tried this many times (a round apart at least), then dropped
_ERROR_TEXT = 300  # characters of an attempt's error kept for the console


class WebhookStore(Webhooks, MemberAlerts, Protocol):
    """What the loop works over."""


class Deliverer:
    """Sends due webhook deliveries and alert emails, every `poll_seconds`, until stopped."""

    def __init__(
        self,
        store: WebhookStore,
        vault: KeyVault,
        mailer: Mailer,
        clock: Callable[[], datetime],
        *,
        account_url: str,
        timeout: float = 10.0,
        delays: tuple[timedelta, ...] = RETRY_DELAYS,
        resolve: Resolver = system_resolver,
        private_test_endpoints: bool = True,
    ) -> None:
        self._store = store
        self._vault = vault
        self._mailer = mailer
        self._clock = clock
        self._account_url = account_url
        self._timeout = timeout
        self._delays = delays
        # The lease outlives a send that times out, with room to record it: no one else claims it meanwhile.
        self._lease = timedelta(seconds=2 * timeout + 5)
        self._resolve = resolve
        self._private_test_endpoints = private_test_endpoints
        # One client per mode: test-mode endpoints may be on the developer's own machine or network (unless the
        # operator says not: WATTFARE_WEBHOOK_PRIVATE_TEST_ENDPOINTS=0); live ones are public, and each live
        # connection goes to an address checked as it is made.
        self._clients: dict[Mode, httpx.AsyncClient] = {}
        self._loop: Periodic | None = None

    def _new_client(self, mode: Mode) -> httpx.AsyncClient:
        # Redirects are not followed: a 3xx is a failed attempt, and no second hop escapes the address check.
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(trust_env=False)
        if mode == "live" or not self._private_test_endpoints:
            transport = PublicOnlyTransport(transport, self._resolve)
        return httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False, transport=transport)

    def start(self, poll_seconds: float) -> None:
        """Start the loop on the running event loop."""
        self._clients = {mode: self._new_client(mode) for mode in ("test", "live")}
        self._loop = Periodic(self.run_once, poll_seconds, what="webhook delivery", log=log)
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop (a send in progress is cancelled: its lease runs out and it is sent again later)."""
        if self._loop is not None:
            await self._loop.stop()
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def run_once(self) -> int:
        """Send what is due now; how many deliveries and emails were tried."""
        now = self._clock()
        try:
            due = await self._store.claim_deliveries(now, now + self._lease, BATCH)
            alerts = await self._store.claim_member_alerts(now, now + self._lease, BATCH, ALERT_ATTEMPTS)
        except StoreUnavailableError as exc:  # the next round tries again; what is due stays due
            log.warning("webhook delivery paused: the database is unavailable: %s", exc)
            return 0
        await asyncio.gather(*(self._deliver(d) for d in due), *(self._mail(a) for a in alerts))
        return len(due) + len(alerts)

    async def _deliver(self, delivery: DueDelivery) -> None:
        at = self._clock()
        try:
            secrets = signing_secrets(
                self._vault,
                delivery.endpoint_id,
                delivery.sealed_secret,
                delivery.sealed_previous_secret,
                delivery.previous_until,
                at,
            )
        except VaultError:  # the encryption key changed: nothing can be signed until it is restored
            await self._failed(delivery, None, "the signing secret cannot be opened (encryption key changed?)")
            return
        headers = signed_headers(delivery.event_id, delivery.body, secrets, at)
        shared = self._clients.get(delivery.mode)
        client = shared or self._new_client(delivery.mode)
        try:
            # Streamed and never read: only the status matters, and an endpoint's answer may be of any size.
            async with client.stream("POST", delivery.url, content=delivery.body.encode(), headers=headers) as answer:
                status = answer.status_code
        except Exception as exc:  # refused, timed out, reset, a URL httpx will not send to: this attempt failed
            await self._failed(delivery, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        finally:
            if client is not shared:
                await client.aclose()
        if 200 <= status < 300:
            await self._store.delivery_succeeded(delivery.event_id, delivery.endpoint_id, status, at)
        else:
            await self._failed(delivery, status, f"answered {status}")

    async def _failed(self, delivery: DueDelivery, status: int | None, error: str) -> None:
        now = self._clock()
        retry_at = next_attempt(delivery.attempts + 1, now, self._delays)
        if retry_at is None:
            log.warning("webhook %s to endpoint %s failed for good: %s", delivery.event_id, delivery.endpoint_id, error)
        await self._store.delivery_failed(
            delivery.event_id, delivery.endpoint_id, status, error[:_ERROR_TEXT], now, retry_at
        )

    async def _mail(self, alert: DueAlert) -> None:
        letter = threshold_letter(
            alert.member_email,
            alert.app_name,
            alert.percent,
            usd_text(alert.spent),
            cents_text(alert.cap),
            self._account_url,
        )
        try:
            await self._mailer.send(letter)
        except Exception as exc:  # the mail server is down: the claim expires and a later round tries again
            log.warning("threshold email for connection %s not sent: %s", alert.connection_id, type(exc).__name__)
            return
        await self._store.member_alert_sent(alert.connection_id, alert.window_key, alert.percent, self._clock())

"""The running server's parts, built once at start-up and shared by every request."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from starlette.requests import Request

from wattfare.server.access.key_cache import KeyCache
from wattfare.server.billing.key_vault import KeyVault, vault_key
from wattfare.server.billing.meter import Meter, OutputAllowances
from wattfare.server.billing.pricebook import PriceBook
from wattfare.server.billing.provider_ceiling import ProviderCeilings
from wattfare.server.billing.reconciliation import report
from wattfare.server.billing.revocations import Revocations
from wattfare.server.instants import utc_now
from wattfare.server.mail.courier import Courier
from wattfare.server.mail.mailer import mailer_for
from wattfare.server.periodic import Periodic
from wattfare.server.settings import Settings, UpstreamKind
from wattfare.server.store import Store
from wattfare.server.store.records import Mode
from wattfare.server.upstream.base import Upstream
from wattfare.server.upstream.openrouter_keys import OpenRouterKeys
from wattfare.server.webhooks.deliverer import Deliverer

log = logging.getLogger("wattfare.server")


@dataclass
class Services:
    """Everything a request handler may use."""

    settings: Settings
    store: Store
    upstreams: dict[Mode, Upstream]
    clock: Callable[[], datetime] = utc_now
    signing_key: bytes = b""
    meter: Meter = field(init=False)
    revocations: Revocations = field(init=False)
    prices: dict[Mode, PriceBook] = field(init=False)
    keys: KeyCache = field(init=False)
    vault: KeyVault = field(init=False)
    ceilings: ProviderCeilings = field(init=False)
    courier: Courier = field(init=False)
    deliverer: Deliverer = field(init=False)
    _reconciler: Periodic | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.meter = Meter(
            self.store,
            self.clock,
            hold_ttl=timedelta(seconds=self.settings.hold_ttl_seconds),
            allowances=OutputAllowances(
                chat=self.settings.output_allowance_tokens, reasoning=self.settings.reasoning_output_allowance_tokens
            ),
            busy_wait=timedelta(seconds=self.settings.busy_wait_seconds),
        )
        self.revocations = Revocations(self.store)
        # One price book per distinct upstream: test and live share it when they share the upstream.
        books: dict[int, PriceBook] = {}
        self.prices = {}
        for mode, upstream in self.upstreams.items():
            self.prices[mode] = books.setdefault(id(upstream), PriceBook(upstream, clock=self.clock))
        self.keys = KeyCache(self.store)
        self.vault = KeyVault()
        management_key = self.settings.openrouter_management_key
        self.ceilings = ProviderCeilings(
            self.store,
            self.vault,
            OpenRouterKeys(self.settings.openrouter_url, management_key) if management_key else None,
            self.clock,
        )
        self.courier = Courier(mailer_for(self.settings))
        self.deliverer = Deliverer(
            self.store,
            self.vault,
            self.courier.mailer,
            self.clock,
            account_url=f"{self.settings.public_url}/account",
            timeout=self.settings.webhook_timeout_seconds,
            private_test_endpoints=self.settings.webhook_private_test_endpoints,
        )

    async def start(self) -> None:
        """Migrate, load secrets, and start the background loops."""
        await self.store.upgrade()
        secret = self.settings.signing_secret or await self.store.put_secret_if_absent(
            "session_signing_key", secrets.token_urlsafe(32)
        )
        self.signing_key = secret.encode()
        self.vault.load(await vault_key(self.store, self.settings.encryption_key))
        for book in {id(b): b for b in self.prices.values()}.values():
            book.start(self.settings.price_refresh_seconds)
        self.meter.start_sweeping(30)
        self.revocations.start()
        self.ceilings.start(self.settings.ceiling_sync_seconds)
        self.deliverer.start(self.settings.webhook_poll_seconds)
        keys = self.ceilings.keys
        if keys is not None:
            store = self.store
            clock = self.clock

            async def reconcile() -> None:
                await report(store, keys, clock())

            self._reconciler = Periodic(reconcile, self.settings.reconcile_seconds, what="reconciliation", log=log)
            self._reconciler.start()

    async def stop(self) -> None:
        """Stop the loops, finish sending email, and release connections."""
        await self.courier.drain()
        await self.deliverer.stop()
        await self.revocations.stop()
        if self._reconciler is not None:
            await self._reconciler.stop()
        await self.ceilings.stop()
        await self.meter.stop()
        for book in {id(b): b for b in self.prices.values()}.values():
            await book.stop()
        for upstream in {id(u): u for u in self.upstreams.values()}.values():
            await upstream.aclose()
        await self.store.close()


def services_of(request: Request) -> Services:
    """The running server's parts, as every handler reaches them."""
    return request.app.state.services


def build_upstreams(settings: Settings) -> dict[Mode, Upstream]:
    """The upstream serving each mode, per the settings (the sandbox unless a real one is configured)."""
    from wattfare.server.upstream.openai_compatible import OpenAICompatibleUpstream
    from wattfare.server.upstream.sandbox.models import SandboxUpstream

    built: dict[UpstreamKind, Upstream] = {}

    def make(kind: UpstreamKind) -> Upstream:
        if kind not in built:
            built[kind] = (
                SandboxUpstream()
                if kind == "sandbox"
                else OpenAICompatibleUpstream(
                    settings.upstream_url, settings.upstream_key, timeout=settings.upstream_timeout_seconds
                )
            )
        return built[kind]

    return {"live": make(settings.live_upstream), "test": make(settings.test_upstream)}

"""The running server's parts, built once at start-up and shared by every request."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from starlette.requests import Request

from wattfare.server.access.key_cache import KeyCache
from wattfare.server.billing.key_vault import KeyVault, new_vault_key
from wattfare.server.billing.meter import Meter, OutputAllowances
from wattfare.server.billing.pricebook import PriceBook
from wattfare.server.billing.revocations import Revocations
from wattfare.server.instants import utc_now
from wattfare.server.settings import Settings, UpstreamKind
from wattfare.server.store import Store
from wattfare.server.store.records import Mode
from wattfare.server.upstream.base import Upstream


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
            self.prices[mode] = books.setdefault(id(upstream), PriceBook(upstream))
        self.keys = KeyCache(self.store)
        self.vault = KeyVault()

    async def start(self) -> None:
        """Migrate, load secrets, and start the background loops."""
        await self.store.upgrade()
        secret = self.settings.signing_secret or await self.store.put_secret_if_absent(
            "session_signing_key", secrets.token_urlsafe(32)
        )
        self.signing_key = secret.encode()
        self.vault.load(
            self.settings.encryption_key
            or await self.store.put_secret_if_absent("provider_key_encryption_key", new_vault_key())
        )
        for book in {id(b): b for b in self.prices.values()}.values():
            book.start(self.settings.price_refresh_seconds)
        self.meter.start_sweeping(30)
        self.revocations.start()

    async def stop(self) -> None:
        """Stop the loops and release connections."""
        await self.revocations.stop()
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

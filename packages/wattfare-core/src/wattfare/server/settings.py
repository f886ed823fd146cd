"""Server configuration, read from `WATTFARE_*` environment variables when a server is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from wattfare.metering import usd_to_nanos

DEFAULT_UPSTREAM_URL = "https://openrouter.ai/api/v1"
DEFAULT_DATABASE_URL = "sqlite:///.wattfare/wattfare.db"
DEFAULT_OPENROUTER_URL = "https://openrouter.ai"

UpstreamKind = Literal["sandbox", "openai-compatible"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a Wattfare server needs to start.

    Attributes:
        database_url: where state lives (`sqlite:///.wattfare/wattfare.db` by default).
        public_url: the URL browsers reach this server at (used in `connectUrl`).
        live_upstream: `openai-compatible` when a provider key is set, else `sandbox`.
        test_upstream: what serves `*_test_*` keys: `sandbox` unless the operator opts into the live one.
        upstream_url: the OpenAI-compatible base URL (OpenRouter by default).
        upstream_key: the operator's provider key, if any.
        signing_secret: HMAC key for session tokens; None = generated once and kept in the database.
        max_body_bytes: larger request bodies are refused with 413.
        default_test_cap: the cap (nano-USD) a test-mode connection gets when the app suggested none.
        hold_ttl_seconds: a hold older than this is presumed dead and settled conservatively.
        upstream_timeout_seconds: read timeout towards the upstream.
        price_refresh_seconds: how often model prices are re-read from the upstream.
        database_pool_size: PostgreSQL connections per process at most (instances x workers x this must stay
            under the server's max_connections).
        encryption_key: base64url of 32 bytes, the AES-256-GCM key for members' provider keys at rest;
            None = generated once and kept in the database (dev only: set it in production).
        openrouter_url: where members link their OpenRouter account (OAuth PKCE `/auth`, `/api/v1/auth/keys`).
        signup_credits: credits (nano-USD) granted to every new member (0 by default).
        output_allowance_tokens: the `max_tokens` sent and held for a request that gave none, on chat models,
            unless its app set its own (see README, "How the cap is guaranteed", for why 4,096).
        reasoning_output_allowance_tokens: the same on reasoning models, whose answers start with hidden
            reasoning tokens (OpenAI advises leaving 25,000 for reasoning and output).
        busy_wait_seconds: how long a request that holds in flight keep from starting waits for them to
            settle before it is refused as `budget_busy` (retryable).
        metrics_token: the bearer token Prometheus scrapes `/metrics` with; None = `/metrics` answers 404.
        log_format: `json` (one object per line, the default) or `console` (for people: `wattfare dev`'s).
        log_level: the least severe log lines written (`info`: one line per request; `warning`: problems only).
        openrouter_management_key: the operator's OpenRouter management key; when set, every credit-funded
            member's requests go out on a key of their own with a hard monthly limit (`billing.provider_ceiling`).
        ceiling_sync_seconds: how often every member's ceiling is recomputed and the provider told of changes.
        reconcile_seconds: how often the provider's usage of each member's key is compared with the ledger.
    """

    database_url: str = DEFAULT_DATABASE_URL
    public_url: str = "http://127.0.0.1:8787"
    live_upstream: UpstreamKind = "sandbox"
    test_upstream: UpstreamKind = "sandbox"
    upstream_url: str = DEFAULT_UPSTREAM_URL
    upstream_key: str | None = None
    signing_secret: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    default_test_cap: int = usd_to_nanos("10")
    hold_ttl_seconds: int = 900
    upstream_timeout_seconds: float = 300.0
    price_refresh_seconds: int = 3600
    database_pool_size: int = 10
    encryption_key: str | None = None
    openrouter_url: str = DEFAULT_OPENROUTER_URL
    signup_credits: int = 0
    output_allowance_tokens: int = 4096
    reasoning_output_allowance_tokens: int = 25_000
    busy_wait_seconds: float = 2.0
    metrics_token: str | None = None
    log_format: str = "json"
    log_level: str = "info"
    openrouter_management_key: str | None = None
    ceiling_sync_seconds: float = 300.0
    reconcile_seconds: float = 3600.0

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure` whenever browsers reach the server over HTTPS."""
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read settings from the environment (or `environ`); keyword overrides win."""
        env = os.environ if environ is None else environ
        key = env.get("WATTFARE_UPSTREAM_KEY") or env.get("OPENROUTER_API_KEY") or None
        explicit = env.get("WATTFARE_UPSTREAM")
        live: UpstreamKind = "openai-compatible" if key or env.get("WATTFARE_UPSTREAM_URL") else "sandbox"
        if explicit in ("sandbox", "openai-compatible"):
            live = explicit
        elif explicit:
            raise ValueError("WATTFARE_UPSTREAM must be 'sandbox' or 'openai-compatible'")
        test: UpstreamKind = live if env.get("WATTFARE_TEST_UPSTREAM") == "live" else "sandbox"
        values: dict[str, object] = {
            "database_url": env.get("WATTFARE_DATABASE_URL", DEFAULT_DATABASE_URL),
            "public_url": env.get("WATTFARE_PUBLIC_URL", "http://127.0.0.1:8787").rstrip("/"),
            "live_upstream": live,
            "test_upstream": test,
            "upstream_url": env.get("WATTFARE_UPSTREAM_URL", DEFAULT_UPSTREAM_URL).rstrip("/"),
            "upstream_key": key,
            "signing_secret": env.get("WATTFARE_SIGNING_SECRET") or None,
            "max_body_bytes": int(env.get("WATTFARE_MAX_BODY_BYTES", str(8 * 1024 * 1024))),
            "default_test_cap": usd_to_nanos(env.get("WATTFARE_TEST_DEFAULT_CAP_USD", "10")),
            # WATTFARE_RESERVATION_TTL_SECONDS is the name before holds had one word; still read, so a deployment's
            # setting survives the upgrade.
            "hold_ttl_seconds": int(
                env.get("WATTFARE_HOLD_TTL_SECONDS", env.get("WATTFARE_RESERVATION_TTL_SECONDS", "900"))
            ),
            "upstream_timeout_seconds": float(env.get("WATTFARE_UPSTREAM_TIMEOUT_SECONDS", "300")),
            "price_refresh_seconds": int(env.get("WATTFARE_PRICE_REFRESH_SECONDS", "3600")),
            "database_pool_size": int(env.get("WATTFARE_DATABASE_POOL_SIZE", "10")),
            "encryption_key": env.get("WATTFARE_ENCRYPTION_KEY") or None,
            "openrouter_url": env.get("WATTFARE_OPENROUTER_URL", DEFAULT_OPENROUTER_URL).rstrip("/"),
            "signup_credits": usd_to_nanos(env.get("WATTFARE_SIGNUP_CREDITS_USD", "0")),
            "output_allowance_tokens": int(env.get("WATTFARE_OUTPUT_ALLOWANCE_TOKENS", "4096")),
            "reasoning_output_allowance_tokens": int(env.get("WATTFARE_REASONING_OUTPUT_ALLOWANCE_TOKENS", "25000")),
            "busy_wait_seconds": float(env.get("WATTFARE_BUSY_WAIT_SECONDS", "2")),
            "metrics_token": env.get("WATTFARE_METRICS_TOKEN") or None,
            "log_format": env.get("WATTFARE_LOG_FORMAT", "json"),
            "log_level": env.get("WATTFARE_LOG_LEVEL", "info").lower(),
            "openrouter_management_key": env.get("WATTFARE_OPENROUTER_MANAGEMENT_KEY") or None,
            "ceiling_sync_seconds": float(env.get("WATTFARE_CEILING_SYNC_SECONDS", "300")),
            "reconcile_seconds": float(env.get("WATTFARE_RECONCILE_SECONDS", "3600")),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

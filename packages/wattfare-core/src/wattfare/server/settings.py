"""Server configuration, read from `WATTFARE_*` environment variables when a server is built."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from wattfare.metering import usd_to_nanos

DEFAULT_UPSTREAM_URL = "https://openrouter.ai/api/v1"
DEFAULT_DATABASE_URL = "sqlite:///.wattfare/wattfare.db"
DEFAULT_OPENROUTER_URL = "https://openrouter.ai"
DEFAULT_MAIL_FROM = "Wattfare <wattfare@localhost>"

UpstreamKind = Literal["sandbox", "openai-compatible"]
SmtpSecurity = Literal["plain", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """The mail server `WATTFARE_SMTP_URL` names (see `smtp_server`)."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None = None
    password: str | None = field(default=None, repr=False)


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
        smtp_url: where members' email goes (`smtp://user:pass@host:587?starttls=true`, `smtps://…:465`); None =
            each message is written to the outbox folder as an .eml file instead (`wattfare dev`'s way).
        mail_from: the `From` of members' email.
        webhook_poll_seconds: how often each process looks for webhook deliveries and alert emails to send.
        webhook_timeout_seconds: how long an app's endpoint has to answer a delivery before it is retried.
        webhook_private_test_endpoints: whether test-mode deliveries may reach loopback and private addresses (a
            developer's laptop); off, they are held to public addresses as live ones always are.
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
    smtp_url: str | None = None
    mail_from: str = DEFAULT_MAIL_FROM
    webhook_poll_seconds: float = 1.0
    webhook_timeout_seconds: float = 10.0
    webhook_private_test_endpoints: bool = True

    @property
    def smtp_server(self) -> SmtpServer | None:
        """The mail server members' email goes through; None: write it to the outbox folder."""
        return smtp_server(self.smtp_url) if self.smtp_url is not None else None

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
            "smtp_url": _checked(smtp_server, env.get("WATTFARE_SMTP_URL") or None),
            "mail_from": _checked_mail_from(env.get("WATTFARE_MAIL_FROM") or DEFAULT_MAIL_FROM),
            "webhook_poll_seconds": float(env.get("WATTFARE_WEBHOOK_POLL_SECONDS", "1")),
            "webhook_timeout_seconds": float(env.get("WATTFARE_WEBHOOK_TIMEOUT_SECONDS", "10")),
            "webhook_private_test_endpoints": _switch(env, "WATTFARE_WEBHOOK_PRIVATE_TEST_ENDPOINTS", default=True),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _switch(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    """An on/off variable: `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no` (any case); unset is `default`."""
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false, on/off)")


def smtp_server(url: str) -> SmtpServer:
    """Read `smtp://user:pass@host:port` (`?starttls=true` to upgrade) or `smtps://…` (TLS from the start).

    The port defaults to 465 for `smtps`, 587 with STARTTLS, else 25; user and password are percent-decoded.

    Raises:
        ValueError: naming what is wrong with the URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("WATTFARE_SMTP_URL must look like smtp://user:pass@host:587 or smtps://user:pass@host:465")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("WATTFARE_SMTP_URL has a port that is not a number from 0 to 65535") from None
    starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower()
    if starttls not in ("true", "false"):
        raise ValueError("WATTFARE_SMTP_URL's starttls must be 'true' or 'false'")
    if parts.scheme == "smtps":
        if starttls == "true":
            raise ValueError("WATTFARE_SMTP_URL: smtps:// is TLS from the start, so it takes no starttls=true")
        security: SmtpSecurity = "tls"
    else:
        security = "starttls" if starttls == "true" else "plain"
    default_port = {"tls": 465, "starttls": 587, "plain": 25}[security]
    return SmtpServer(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _checked(parse: Callable[[str], object], value: str | None) -> str | None:
    if value is not None:
        parse(value)
    return value


def _checked_mail_from(sender: str) -> str:
    _, address = parseaddr(sender)
    if "@" not in address or any(c in sender for c in "\r\n"):
        raise ValueError("WATTFARE_MAIL_FROM must be an email address, such as 'Wattfare <no-reply@example.com>'")
    return sender

"""Registering an app's webhook endpoints and rotating their secrets: what the console, the API and the CLI share.

A secret is shown once, when it is made; Wattfare keeps it sealed by the key vault (bound to the endpoint's id,
so a sealed secret copied onto another endpoint opens nowhere) because it must sign every delivery.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from wattfare.server.access.keys import new_id
from wattfare.server.billing.key_vault import KeyVault
from wattfare.server.store.records import Mode
from wattfare.server.store.webhook_protocols import Webhooks
from wattfare.server.store.webhook_records import WebhookEndpoint
from wattfare.server.webhooks.public_addresses import is_public
from wattfare.server.webhooks.signing import new_signing_secret

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 200
MAX_ENDPOINTS = 16  # per app and mode, as Stripe limits them: each event is sent to every one
# After a rotation the old secret signs too for this long, so receivers can deploy the new one meanwhile.
ROTATION_OVERLAP = timedelta(hours=24)


class InvalidEndpointError(ValueError):
    """An endpoint that cannot be registered as asked; `param` names the field at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class EndpointWithSecret:
    """An endpoint, and its signing secret in the clear: shown to its developer this once."""

    endpoint: WebhookEndpoint
    secret: str


def checked_url(url: str, mode: Mode) -> str:
    """`url` if it can receive deliveries: absolute http(s), no credentials in it; HTTPS for live mode."""
    url = url.strip(" \t\r\n")  # what a pasted URL picks up; any other space or control is refused below
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidEndpointError(f"The endpoint URL must be 1 to {MAX_URL_LENGTH} characters.", "url")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port out of range or not a number
    except ValueError:
        raise InvalidEndpointError("The endpoint URL is not a valid URL.", "url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidEndpointError("The endpoint URL must be an absolute http:// or https:// URL.", "url")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpointError("Put no credentials in the endpoint URL: verify the signature instead.", "url")
    # Printable and no spaces: no NUL (PostgreSQL's text cannot hold it), no C1 controls or line separators.
    if not url.isprintable() or any(c.isspace() for c in url):
        raise InvalidEndpointError("The endpoint URL may not contain spaces or control characters.", "url")
    if mode == "live" and parts.scheme != "https":
        raise InvalidEndpointError("Live-mode endpoints must use https:// (test-mode ones may use http://).", "url")
    if mode == "live" and _inside(parts.hostname):
        raise InvalidEndpointError(
            "Live-mode endpoints must be public: not localhost, nor a loopback, private or link-local address "
            "(test-mode ones may be).",
            "url",
        )
    return url


def _inside(host: str) -> bool:
    """Whether `host` names this machine or a private network by itself (a name that resolves there is not seen)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: each delivery checks what it resolves to (public_addresses)
    return not is_public(address)


def checked_description(description: str | None) -> str:
    """A description of at most `MAX_DESCRIPTION_LENGTH` printable characters, on one line."""
    text = " ".join((description or "").split())
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidEndpointError(f"The description is at most {MAX_DESCRIPTION_LENGTH} characters.", "description")
    if not text.isprintable():  # NUL cannot be stored by PostgreSQL, and no console should show controls
        raise InvalidEndpointError("The description may not contain control characters.", "description")
    return text


def _sealing_context(endpoint_id: str) -> str:
    return f"webhook:{endpoint_id}"


async def add_endpoint(
    store: Webhooks, vault: KeyVault, app_id: str, mode: Mode, url: str, description: str | None, now: datetime
) -> EndpointWithSecret:
    """Register an endpoint for an app's events in one mode, with a new secret."""
    url = checked_url(url, mode)
    text = checked_description(description)
    if len(await store.webhook_endpoints(app_id, mode)) >= MAX_ENDPOINTS:
        raise InvalidEndpointError(f"An app has at most {MAX_ENDPOINTS} endpoints per mode.", "url")
    endpoint_id = new_id("we")
    secret = new_signing_secret()
    sealed = vault.seal(secret, _sealing_context(endpoint_id))
    endpoint = await store.add_webhook_endpoint(endpoint_id, app_id, mode, url, text, sealed, now)
    return EndpointWithSecret(endpoint, secret)


async def rotate_secret(
    store: Webhooks, vault: KeyVault, app_id: str, endpoint_id: str, now: datetime
) -> EndpointWithSecret | None:
    """Give an endpoint a new secret; the old one keeps signing for `ROTATION_OVERLAP`. None: no such endpoint."""
    secret = new_signing_secret()
    sealed = vault.seal(secret, _sealing_context(endpoint_id))
    endpoint = await store.rotate_webhook_secret(app_id, endpoint_id, sealed, now + ROTATION_OVERLAP)
    return EndpointWithSecret(endpoint, secret) if endpoint is not None else None


def signing_secrets(
    vault: KeyVault,
    endpoint_id: str,
    sealed_secret: str,
    sealed_previous_secret: str | None,
    previous_until: datetime | None,
    now: datetime,
) -> list[str]:
    """The secrets a delivery to this endpoint is signed with now: the current one, and the previous one for a day."""
    context = _sealing_context(endpoint_id)
    found = [vault.open(sealed_secret, context)]
    if sealed_previous_secret is not None and previous_until is not None and now < previous_until:
        found.append(vault.open(sealed_previous_secret, context))
    return found

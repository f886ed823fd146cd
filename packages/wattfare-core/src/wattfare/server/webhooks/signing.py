"""Signing deliveries the Standard Webhooks way, with the `standardwebhooks` package (never hand-rolled HMAC).

A secret is `whsec_` and the base64 of 32 random bytes. After a rotation the old secret signs too, for a day,
so a receiver that has not deployed the new one yet still verifies: `webhook-signature` then carries both
signatures, space-separated, as the specification allows.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from wattfare._version import __version__

USER_AGENT = f"Wattfare-Webhooks/{__version__}"


def new_signing_secret() -> str:
    """A fresh signing secret, `whsec_…`."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(event_id: str, body: str, signing_secrets: Sequence[str], at: datetime) -> dict[str, str]:
    """The headers of one attempt: `webhook-id`, `webhook-timestamp` and one signature per secret."""
    signatures = " ".join(Webhook(secret).sign(event_id, at, body) for secret in signing_secrets)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }

"""The offer a grant popup's form carries: what the member was shown, signed, and approvable once.

The popup's GET checks the app's request (`?key=…&requests=…`) and puts it in the form as an offer: the app, the
mode, the requests, the dollar cap, the lifetime, who it was shown to, until when it may be approved, and a random
id. Signing it (HMAC with the server's key) means a POST mints exactly what the member read, never what a
tampered form says; its id is spent in the store's single-use tokens before the grant is minted, so a form posted
twice (a double click, a replayed request) mints one grant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from wattfare.server.store.records import Mode

# Long enough to read the page and sign up in the popup (wattfare.js waits 11 minutes for a decision).
OFFER_TTL = timedelta(minutes=10)
_MAX_OFFER_LENGTH = 1024
_CONTEXT = b"wattfare-grant-offer:"


class InvalidOfferError(Exception):
    """The offer is malformed or its signature is not ours (a tampered or foreign form)."""


@dataclass(frozen=True, slots=True)
class GrantOffer:
    """A grant as the popup offered it to one visitor (`member_id` None: an anonymous visitor, test mode)."""

    app_id: str
    mode: Mode
    requests: int
    max_amount: int | None
    lifetime_seconds: int
    member_id: str | None
    expires_at: int
    offer_id: str

    @property
    def lifetime(self) -> timedelta:
        """How long the grant lives once approved."""
        return timedelta(seconds=self.lifetime_seconds)

    def expired(self, now: datetime) -> bool:
        """Whether the offer may no longer be approved (the member must ask the app again)."""
        return self.expires_at <= now.timestamp()


def new_offer(
    app_id: str,
    mode: Mode,
    requests: int,
    max_amount: int | None,
    lifetime: timedelta,
    member_id: str | None,
    now: datetime,
) -> GrantOffer:
    """An offer made now, with a fresh id."""
    expires_at = int((now + OFFER_TTL).timestamp())
    seconds = int(lifetime.total_seconds())
    return GrantOffer(app_id, mode, requests, max_amount, seconds, member_id, expires_at, secrets.token_urlsafe(16))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_offer(secret: bytes, offer: GrantOffer) -> str:
    """The offer as the form's hidden field: `<payload>.<mac>`, base64url."""
    payload = orjson.dumps(
        {
            "app": offer.app_id,
            "mode": offer.mode,
            "requests": offer.requests,
            "cap": offer.max_amount,
            "life": offer.lifetime_seconds,
            "member": offer.member_id,
            "exp": offer.expires_at,
            "id": offer.offer_id,
        }
    )
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def read_offer(secret: bytes, text: str) -> GrantOffer:
    """The offer a form posted back, its signature checked (not its expiry: see `GrantOffer.expired`)."""
    encoded, _, signature = text.partition(".")
    if not encoded or not signature or len(text) > _MAX_OFFER_LENGTH:
        raise InvalidOfferError("malformed offer")
    try:
        payload = _unb64(encoded)
        mac = _unb64(signature)
    except (binascii.Error, ValueError) as exc:
        raise InvalidOfferError("malformed offer") from exc
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise InvalidOfferError("bad offer signature")
    try:
        fields: Any = orjson.loads(payload)
        cap = fields["cap"]
        member = fields["member"]
        return GrantOffer(
            app_id=str(fields["app"]),
            mode="live" if fields["mode"] == "live" else "test",
            requests=int(fields["requests"]),
            max_amount=None if cap is None else int(cap),
            lifetime_seconds=int(fields["life"]),
            member_id=None if member is None else str(member),
            expires_at=int(fields["exp"]),
            offer_id=str(fields["id"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidOfferError("malformed offer") from exc

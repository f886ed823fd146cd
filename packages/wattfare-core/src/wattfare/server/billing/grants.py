"""One-time grants: minting one, and when one may no longer admit a request.

A grant allows one app a number of requests (and, optionally, at most a sum) from a member's funding, with no
app user and no lasting connection. When a request counts: from its admission (the reserve that holds its
worst case also counts it, in one transaction, so N concurrent requests on a grant of 3 admit at most 3); a
request whose hold is released because nothing reached a model (the upstream refused or could not be reached
before answering, or the caller left first) is given back. A request refused before its admission never counts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from wattfare.metering import MAX_CAP
from wattfare.server.access.keys import hash_key, new_id
from wattfare.server.billing.hold import Refusal
from wattfare.server.store.grant_records import Grant, NewGrant
from wattfare.server.store.protocols import Grants
from wattfare.server.store.records import Mode

GRANT_TOKEN_PREFIX = "wfg_"  # noqa: S105 (a prefix, not a secret)
MAX_GRANT_REQUESTS = 1000
DEFAULT_GRANT_LIFETIME = timedelta(hours=1)
MIN_GRANT_LIFETIME = timedelta(minutes=1)
MAX_GRANT_LIFETIME = timedelta(days=1)
# The longest token a request may name: longer ones are refused unread (a token is 47 characters).
MAX_GRANT_TOKEN_LENGTH = 128


@dataclass(frozen=True, slots=True)
class MintedGrant:
    """A grant just made, with the only copy of its token (Wattfare keeps its hash)."""

    grant: Grant
    token: str


async def mint_grant(
    store: Grants,
    *,
    app_id: str,
    mode: Mode,
    member_id: str | None,
    requests: int,
    max_amount: int | None,
    lifetime: timedelta,
    now: datetime,
) -> MintedGrant:
    """Make a grant of `requests` requests and at most `max_amount` (None: no dollar cap of its own)."""
    token = GRANT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    new = NewGrant(
        id=new_id("gr"),
        connection_id=new_id("conn"),
        app_id=app_id,
        mode=mode,
        member_id=member_id,
        token_hash=hash_key(token),
        requests_allowed=requests,
        max_amount=max_amount,
        created_at=now,
        expires_at=now + lifetime,
    )
    # Without a dollar cap of its own, a grant's connection gets the largest cap any connection may have: the
    # member's funding (credits, or their provider key's limit) and each request's max_tokens still bound it.
    grant = await store.create_grant(new, max_amount if max_amount is not None else MAX_CAP)
    return MintedGrant(grant, token)


async def grant_for_token(store: Grants, token: str, app_id: str, mode: Mode) -> Grant | None:
    """The grant a token names, if it is a grant of this app and mode (else None, as for a forged token)."""
    if not token.startswith(GRANT_TOKEN_PREFIX) or len(token) > MAX_GRANT_TOKEN_LENGTH:
        return None
    grant = await store.grant_by_token(hash_key(token))
    if grant is None or grant.app_id != app_id or grant.mode != mode:
        return None
    return grant


_WHY: dict[str, str] = {
    "revoked": "The member revoked this grant.",
    "expired": "This grant has expired.",
    "used_up": "This grant is used up: its requests are counted or its dollar cap is spent.",
}


def grant_refusal(grant: Grant | None, now: datetime) -> Refusal | None:
    """Why a grant may not admit a request now (`grant_invalid`), or None when it may."""
    if grant is None:
        return Refusal("grant_invalid", "Unknown grant: it was not issued to this app, or the token is wrong.")
    state = grant.state(now)
    if state == "active":
        return None
    return Refusal("grant_invalid", _WHY[state])


def grant_spent_refusal() -> Refusal:
    """A grant's dollar cap cannot hold this request (what is left is too little for even a short answer)."""
    return Refusal("grant_invalid", "This grant's dollar cap is spent: it cannot pay for another request.")

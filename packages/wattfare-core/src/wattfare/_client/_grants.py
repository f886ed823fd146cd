"""One-time grants, I/O-free: checking a grant token, and the requests that mint and read a grant.

A grant lets one app spend a member's budget for N requests (and at most $X), with no app user and no
connection. Completions and embeddings on a grant are the user's requests with `Wattfare-Grant` in place
of `Wattfare-User` (`_core.chat_request(..., grant=...)`); what only grants have lives here.
"""

from __future__ import annotations

import json
from decimal import Decimal

from wattfare._client._core import RequestSpec, usd_amount
from wattfare._exceptions import UsageError


def check_grant_token(token: object) -> str:
    """Return the grant token, or raise `UsageError` if it is not a non-empty printable ASCII str (a header value)."""
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        # Never echo the value: a grant token is a credential.
        raise UsageError(f"a grant token must be a non-empty printable ASCII str, got {_shape(token)}")
    return token


def _shape(value: object) -> str:
    if isinstance(value, str):
        return "an empty str" if not value else "a str with characters a header cannot carry"
    return type(value).__name__


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be an int >= 1, got {value!r}")
    return value


def create_grant_request(
    requests: int, max_usd: Decimal | int | str | None, expires_in_seconds: int | None
) -> RequestSpec:
    """`POST /grants` (test keys only); the server checks the limits (requests 1..1000, a 60 s..1 day lifetime)."""
    body: dict[str, object] = {"requests": _count("requests", requests)}
    if max_usd is not None:
        amount = usd_amount(max_usd, "max_usd")
        if amount == 0:
            raise UsageError("max_usd must be more than 0 (leave it out for no dollar cap)")
        # A decimal string: the exact amount the caller gave, never through a float.
        body["maxUsd"] = format(amount, "f")
    if expires_in_seconds is not None:
        body["expiresInSeconds"] = _count("expires_in_seconds", expires_in_seconds)
    return RequestSpec("POST", "/grants", body=json.dumps(body, separators=(",", ":")).encode())


def grant_status_request(token: str) -> RequestSpec:
    """`GET /grants/current`: the grant is named by its header, as on a completion."""
    return RequestSpec("GET", "/grants/current", grant=token)

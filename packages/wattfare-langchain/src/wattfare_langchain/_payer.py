"""Who a `ChatWattfare` or a `WattfareEmbeddings` charges: one of your app's users, or one one-time grant.

A request names exactly one: the user's id (`Wattfare-User`) or a grant a member gave the app (`Wattfare-Grant`,
N requests with no app user). Both classes ask here, so their checks and their messages cannot drift.
"""

from __future__ import annotations

import hashlib

from wattfare import (
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
    UsageError,
    Wattfare,
    WattfareGrant,
    WattfareUser,
)


def check_one_payer(owner: str, user_id: str | None, grant: str | None) -> None:
    """`UsageError` when both a user and a grant are named: the server would refuse every request."""
    if user_id is not None and grant is not None:
        raise UsageError(f"{owner} is charged to a user or to a grant, not both: pass user_id=... or grant=...")


def check_non_empty(name: str, value: object) -> str:
    """`value` when it is a non-empty str, else `UsageError` (a grant token is never echoed: it is a credential)."""
    if not isinstance(value, str) or not value:
        shown = repr(value) if name != "grant" else type(value).__name__
        raise UsageError(f"{name} must be a non-empty str, got {shown}")
    return value


def sync_payer(owner: str, client: Wattfare, user_id: str | None, grant: str | None) -> WattfareUser | WattfareGrant:
    """The core client's handle for whoever pays."""
    if grant is not None:
        return client.grant(grant)
    return client.user(_require_user(owner, user_id))


def async_payer(
    owner: str, client: AsyncWattfare, user_id: str | None, grant: str | None
) -> AsyncWattfareUser | AsyncWattfareGrant:
    """`sync_payer`, on the async client."""
    if grant is not None:
        return client.grant(grant)
    return client.user(_require_user(owner, user_id))


def _require_user(owner: str, user_id: str | None) -> str:
    if user_id is None:
        raise UsageError(
            f"{owner} has no one to charge: pass user_id=... (or use .for_user(app_user_id)), or grant=... for a"
            " member's one-time grant (or use .for_grant(grant_token))"
        )
    return user_id


def grant_fingerprint(grant: str) -> str:
    """A short digest that tells grants apart in LangChain's identifying params (caches, traces) without the token."""
    return "sha256:" + hashlib.sha256(grant.encode()).hexdigest()[:16]

"""Who pays for a metered request: an app user's connection (`Wattfare-User`) or a one-time grant (`Wattfare-Grant`).

A grant is named by its token in the `Wattfare-Grant` header, instead of an end user: the body's `user` field
then names nobody (OpenAI clients may send one for abuse tracking). A grant that is unknown, another app's or
mode's, expired, used up or revoked is refused here, before any hold (402 `grant_invalid`); the reserve checks
it again inside its write, where it counts the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wattfare.server.billing.grants import grant_for_token, grant_refusal
from wattfare.server.errors import invalid
from wattfare.server.proxy.exchange import refusal_error
from wattfare.server.proxy.request_body import require_end_user
from wattfare.server.services import Services
from wattfare.server.store.grant_records import Grant
from wattfare.server.store.records import KeyRecord

GRANT_HEADER = "wattfare-grant"


@dataclass(frozen=True, slots=True)
class Payer:
    """The app user id a request is metered under, and the grant it counts against (None: a connection's)."""

    app_user_id: str
    grant: Grant | None = None


async def payer_of(services: Services, key: KeyRecord, headers: Mapping[str, str], body_user: str | None) -> Payer:
    """The payer a request names; 400 when it names none or both, 402 `grant_invalid` for a grant that cannot pay."""
    token = headers.get(GRANT_HEADER)
    if token is None:
        return Payer(require_end_user(headers.get("wattfare-user"), body_user))
    if headers.get("wattfare-user"):
        raise invalid(
            "Send either 'Wattfare-Grant' (a one-time grant) or 'Wattfare-User' (a connected user), not both.",
            "Wattfare-Grant",
        )
    grant = await grant_for_token(services.store, token, key.app_id, key.mode)
    refusal = grant_refusal(grant, services.clock())
    if refusal is not None:
        raise refusal_error(refusal)
    assert grant is not None  # a missing grant is refused above
    return Payer(grant.app_user_id, grant)

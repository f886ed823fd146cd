"""How fast passwords may be guessed, without letting a stranger lock a member out of their account.

A plain per-email limit (10 tries per 15 minutes, then every try refused, the right password too) lets anyone
who knows a member's email keep that member out. So each attempt (sign-in, or sign-up, which signs in to an
existing account given its password) counts against limits that an attacker cannot spend for the owner:

- **per email and client address**: 5 a minute, then 10 an hour. One address guessing one account is held
  to 10 guesses an hour (a minute's wait, then the rest of the hour's), while the owner at any other address
  keeps a whole budget of their own.
- **per client address**, all emails: 50 per 15 minutes, against one password sprayed over many accounts.
- **per email**, all addresses: 30 per 10 minutes. This bounds guessing from many addresses at once at 180
  an hour per account. It is the one budget an attacker can use up for everyone, so it lasts ten minutes at a
  time, it takes at least three addresses to use it up (every ten-minute window lies inside one clock hour,
  and one address gets 10 attempts an hour), and it does not apply to known browsers.
- **known browsers**: a browser that signed in to an email before holds a signed cookie saying so (see
  `web.sessions.known_browser`). Its attempts count only per (email, cookie), 5 a minute and 10 an hour, and
  never against the shared budgets. So the owner's usual browser signs in during a distributed attack, and
  from an address the attacker shares (the same NAT); a stolen cookie is worth one more address, no more.

Attempts are counted, not failures: each counter is incremented atomically before the password is checked,
so parallel guesses cannot slip in between a check and its count. The owner's successful sign-ins cost one
attempt each, which the limits leave room for. Unknown emails are counted exactly like known ones, so a
refusal says nothing about whether an account exists.

The client address is `request.client`: uvicorn (`wattfare serve` runs it with proxy headers on) takes it from
`X-Forwarded-For` only when the TCP peer is a trusted proxy (`FORWARDED_ALLOW_IPS`, default 127.0.0.1 and
::1), else it is the peer itself, which a client cannot forge. IPv6 addresses count per /64, the block one
subscriber is usually given: counting single addresses would give an attacker 2**64 fresh budgets.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from starlette.requests import Request

from wattfare.server.access.rate_limits import RateLimit, first_refusal
from wattfare.server.services import Services
from wattfare.server.web.sessions import known_browser

PER_EMAIL_AND_CLIENT = (
    RateLimit("sign-in-email-client-minute", 5, timedelta(minutes=1)),
    RateLimit("sign-in-email-client-hour", 10, timedelta(hours=1)),
)
PER_CLIENT = RateLimit("sign-in-client", 50, timedelta(minutes=15))
PER_EMAIL = RateLimit("sign-in-email", 30, timedelta(minutes=10))
PER_KNOWN_BROWSER = (
    RateLimit("sign-in-known-browser-minute", 5, timedelta(minutes=1)),
    RateLimit("sign-in-known-browser-hour", 10, timedelta(hours=1)),
)

_IPV6_SUBSCRIBER_PREFIX = 64


def client_key(request: Request) -> str:
    """The client address that limits count against: the IPv4 address, or the IPv6 /64 network."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # Not an address (an ASGI server naming its client otherwise): kept when it is plain text.
        return host if host and host.isascii() and host.isprintable() else "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_SUBSCRIBER_PREFIX), strict=False))
    return str(address)


async def admit_sign_in(services: Services, request: Request, email: str | None) -> int | None:
    """Count one password attempt for `email` (None: not an email) from this request's browser and address.

    Returns:
        None when the password may be checked; else the seconds to wait (`Retry-After`).
    """
    client = client_key(request)
    browser_id = known_browser(services, request, email) if email is not None else None
    limits: list[tuple[RateLimit, str]]
    if email is None:
        limits = [(PER_CLIENT, client)]
    elif browser_id is not None:
        # Spaces appear in neither an email nor an id, so no two (email, id) pairs share a key.
        limits = [(limit, f"{email} {browser_id}") for limit in PER_KNOWN_BROWSER]
    else:
        limits = [(limit, f"{email} {client}") for limit in PER_EMAIL_AND_CLIENT]
        limits += [(PER_CLIENT, client), (PER_EMAIL, email)]
    return await first_refusal(services.store, limits, services.clock())

"""The member's account, `/account`: connected apps with this month's spend, caps, one-click revoke, funding.

Per connected app the member chooses when Wattfare emails them about its spend: at 80% of the cap (the
default), at 100%, or never (live connections only: test ones spend nothing real).

It also lists the one-time grants the member approved in the last 30 days, each revocable while active. A grant is
metered through a connection of its own (app user `grant:<id>`): those connections are the grants' and are
listed only as grants, never among the connected apps.

Revoking takes effect at once: the next request is refused with `not_connected` (the store's reserve checks
the state in the same conditional write) and streams in flight are woken here, or by the revocation poll on
other instances, and stop within a second.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wattfare.metering import ALERT_CHOICES, window_containing
from wattfare.server.billing.provider_ceiling import own_ceiling_refusal
from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import MemberConnection
from wattfare.server.store.grant_records import GRANT_USER_PREFIX
from wattfare.server.web.charts import daily_chart
from wattfare.server.web.forms import parse_cap, read_member_form
from wattfare.server.web.render import PageError, render
from wattfare.server.web.sessions import member_visitor

# Notices are chosen by code, never echoed from the URL.
NOTICES = {
    "cap": "Cap updated.",
    "bad-cap": "Enter a monthly cap in US dollars, more than 0 and at most 1,000,000 (to stop an app, revoke it).",
    "revoked": "Access revoked: the app can no longer spend from your budget.",
    "removed": "Removed from the list. Its spend this month still counts in your totals.",
    "linked": "OpenRouter linked: your requests are now paid with your own OpenRouter key.",
    "unlinked": "OpenRouter unlinked: the key was deleted from Wattfare.",
    "link-failed": "Linking OpenRouter did not complete. Nothing was changed; try again.",
    "bad-limit": "Enter a monthly OpenRouter limit in US dollars, more than 0 and at most 1,000,000, or none.",
    "grant-revoked": "Grant revoked: the app can make no more requests with it.",
    "alert-80": "Saved: Wattfare emails you when this app has spent 80% of its monthly cap.",
    "alert-100": "Saved: Wattfare emails you when this app has spent its whole monthly cap.",
    "alert-never": "Saved: no emails about this app's spend.",
    "bad-alert": "Choose when to be emailed: at 80% or 100% of the cap, or never.",
}
# The threshold email choices as the form posts them ("never": no email), looked up, never parsed.
ALERT_OPTIONS: dict[str, int | None] = {str(percent): percent for percent in ALERT_CHOICES} | {"never": None}
# How far back the account lists one-time grants (they live a day at most).
GRANTS_SHOWN_FOR = timedelta(days=30)
_GRANT_STATES = {"active": "Active", "used_up": "Used up", "expired": "Expired", "revoked": "Revoked"}


def _path_id(request: Request, name: str, unknown: str) -> str:
    """An id from the URL; a 404 for one that cannot exist (a `%00` would reach PostgreSQL, which refuses NUL)."""
    found: str = request.path_params[name]
    if not found.isprintable():
        raise PageError(404, "Not found", unknown)
    return found


def apps_only(connections: list[MemberConnection]) -> list[MemberConnection]:
    """The member's connections to apps, without the connections that meter their one-time grants."""
    return [item for item in connections if not item.connection.app_user_id.startswith(GRANT_USER_PREFIX)]


def openrouter_origin(services: Services) -> str:
    """Where the "Link OpenRouter" form leads (allowed in the page's form-action)."""
    return services.settings.openrouter_url


async def account_page(request: Request) -> Response:
    """`GET /account`."""
    services = services_of(request)
    found, member = await member_visitor(services, request)
    window = window_containing(services.clock())
    connections = apps_only(await services.store.member_connections(member.id, window.key))
    spend = await services.store.member_daily_spend(member.id, window.start, window.end)
    # A revoked app has no cap to edit: it is listed apart, with how to reconnect, for as long as it matters this
    # month (revoked this month, or with spend this month); after that it leaves the list by itself.
    revoked = [
        item
        for item in connections
        if item.connection.state != "active"
        and (item.spent or item.reserved or item.connection.updated_at >= window.start)
    ]
    now = services.clock()
    grants = await services.store.member_grants(member.id, now - GRANTS_SHOWN_FOR)
    context: dict[str, Any] = {
        "grants": [(grant, grant.state(now), _GRANT_STATES[grant.state(now)]) for grant in grants],
        "active": [item for item in connections if item.connection.state == "active"],
        "revoked": revoked,
        "chart": daily_chart(spend, window),
        "resets_at": window.end,
        "credits": await services.store.credit_balance(member.id),
        "provider_key": await services.store.provider_key(member.id),
        "ceiling_reached": hit
        if (hit := await services.store.ceiling_hit(member.id)) and hit.window_key == window.key
        else None,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
        "alert_options": [
            (value, f"{percent}%" if percent is not None else "Never") for value, percent in ALERT_OPTIONS.items()
        ],
    }
    return render(services, found, "account.html", context, form_targets=[openrouter_origin(services)])


async def change_cap(request: Request) -> Response:
    """`POST /account/connections/{id}/cap`: change one connection's monthly cap."""
    services = services_of(request)
    _, member, fields = await read_member_form(services, request, "/account")
    cap = parse_cap(fields.get("monthlyUsd"))
    if cap is None:
        return RedirectResponse("/account?notice=bad-cap", 303)
    connection_id = _path_id(request, "connection_id", "You have no such connection.")
    window = window_containing(services.clock())
    over = await own_ceiling_refusal(
        services.store, member.id, cap, window.key, replacing=lambda c: c.id == connection_id
    )
    if over is not None:
        raise PageError(422, "Over your OpenRouter limit", over)
    changed = await services.store.set_member_cap(member.id, connection_id, cap, services.clock())
    if changed is None:
        raise PageError(404, "Not found", "You have no such connection.")
    await services.ceilings.after_change(member.id)
    return RedirectResponse("/account?notice=cap", 303)


async def change_alert(request: Request) -> Response:
    """`POST /account/connections/{id}/alerts`: when to email the member about this app's spend (or never)."""
    services = services_of(request)
    _, member, fields = await read_member_form(services, request, "/account")
    choice = fields.get("percent", "")
    if choice not in ALERT_OPTIONS:
        return RedirectResponse("/account?notice=bad-alert", 303)
    connection_id = _path_id(request, "connection_id", "You have no such connection.")
    if not await services.store.set_alert_percent(member.id, connection_id, ALERT_OPTIONS[choice]):
        raise PageError(404, "Not found", "You have no such connection.")
    return RedirectResponse(f"/account?notice=alert-{choice}", 303)


async def revoke(request: Request) -> Response:
    """`POST /account/connections/{id}/revoke`: stop the app spending, at once (streams in flight included)."""
    services = services_of(request)
    _, member, _ = await read_member_form(services, request, "/account")
    revoked = await services.store.revoke_member_connection(
        member.id, _path_id(request, "connection_id", "You have no such connection."), services.clock()
    )
    if revoked is None:
        raise PageError(404, "Not found", "You have no such connection.")
    services.revocations.revoked(revoked.id)
    await services.ceilings.after_change(member.id)
    return RedirectResponse("/account?notice=revoked", 303)


async def remove(request: Request) -> Response:
    """`POST /account/connections/{id}/remove`: take a revoked app off the list (its spend stays on the books)."""
    services = services_of(request)
    _, member, _ = await read_member_form(services, request, "/account")
    connection_id = _path_id(request, "connection_id", "You have no such revoked app.")
    if not await services.store.remove_member_connection(member.id, connection_id, services.clock()):
        raise PageError(404, "Not found", "You have no such revoked app.")
    return RedirectResponse("/account?notice=removed", 303)


async def revoke_grant(request: Request) -> Response:
    """`POST /account/grants/{id}/revoke`: end one of the member's grants at once (streams in flight included)."""
    services = services_of(request)
    _, member, _ = await read_member_form(services, request, "/account")
    grant_id = _path_id(request, "grant_id", "You have no such grant, or it was already revoked.")
    revoked = await services.store.revoke_member_grant(member.id, grant_id, services.clock())
    if revoked is None:
        raise PageError(404, "Not found", "You have no such grant, or it was already revoked.")
    services.revocations.revoked(revoked.connection_id)
    await services.ceilings.after_change(member.id)
    return RedirectResponse("/account?notice=grant-revoked", 303)


routes = [
    Route("/account", account_page, methods=["GET"]),
    Route("/account/connections/{connection_id}/cap", change_cap, methods=["POST"]),
    Route("/account/connections/{connection_id}/alerts", change_alert, methods=["POST"]),
    Route("/account/connections/{connection_id}/revoke", revoke, methods=["POST"]),
    Route("/account/connections/{connection_id}/remove", remove, methods=["POST"]),
    Route("/account/grants/{grant_id}/revoke", revoke_grant, methods=["POST"]),
]

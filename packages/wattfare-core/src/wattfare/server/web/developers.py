"""The developer console, `/developers`: register apps and their origins, keys (test and live), the top spenders.

An app's page shows the month's biggest spenders in the mode shown (`TOP_USERS`), how many users spent and what in
all, and points to `GET /usage` for every user: the card reads the app's counters of the month and the listed
users' ledger rows, never the app's whole month of requests (at 2M ledger rows and 90,000 users, a 2.9 s page of
12 MB when it did; 0.3 s and 20 KB now: store/sql/console_usage.py).

An app's page also lists its one-time grants of the last 30 days in the mode shown (what each allowed and used);
a grant's usage is metered as an app user of its own, `grant:<id>`, and shown as that grant in the usage table.

Secret keys are shown once, on the page that creates them, and stored only as hashes. Publishable keys are
browser-safe and shown whenever asked. Every app page checks that the signed-in member owns the app: no
member can see or change another's app (the answer is the same 404 as for an unknown app).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wattfare.metering import window_containing
from wattfare.server.access.app_registration import register_app
from wattfare.server.access.keys import mint_key
from wattfare.server.access.origins import OriginError, parse_origins
from wattfare.server.billing.output_allowance import AllowanceError, parse_allowance
from wattfare.server.services import Services, services_of
from wattfare.server.store.account_records import AppProfile, Member
from wattfare.server.store.grant_records import GRANT_USER_PREFIX
from wattfare.server.store.records import Mode
from wattfare.server.web.forms import read_member_form
from wattfare.server.web.render import PageError, render
from wattfare.server.web.sessions import Visitor, member_visitor

MODES: tuple[Mode, ...] = ("test", "live")
_MAX_NAME_LENGTH = 100
# The app page's usage card lists this many of the month's biggest spenders (with how many spent and the total):
# the page stays a few dozen rows whatever the app's size; the full report is `GET /usage`, paged.
TOP_USERS = 50
# How far back an app's page lists its one-time grants (they live a day at most).
GRANTS_SHOWN_FOR = timedelta(days=30)
_GRANT_STATES = {"active": "Active", "used_up": "Used up", "expired": "Expired", "revoked": "Revoked"}
NOTICES = {
    "origins": "Allowed origins saved.",
    "revoked": "Key revoked.",
    "allowance": "Output allowance saved.",
    "webhook-deleted": "Webhook endpoint deleted: it receives no more events.",
}


async def own_app(services: Services, member: Member, app_id: str) -> AppProfile:
    """The member's app `app_id`; a 404 page for an unknown app and for another member's alike."""
    # A NUL from a URL (`%00`) never reaches the store: PostgreSQL refuses it in text, as a 500.
    app = await services.store.app_profile(app_id) if app_id.isprintable() else None
    if app is None or app.owner_member_id != member.id:
        raise PageError(404, "Not found", "You have no such app.")
    return app


async def console(request: Request) -> Response:
    """`GET /developers`: the member's apps and the form to register one."""
    services = services_of(request)
    found, member = await member_visitor(services, request)
    apps = await services.store.member_apps(member.id)
    return render(services, found, "developers.html", {"apps": apps, "error": None, "name": "", "origins": ""})


async def _mint_secret(services: Services, app_id: str, mode: Mode) -> str:
    key = mint_key(app_id, mode, "secret")
    await services.store.add_key(key.key_id, app_id, mode, "secret", key.key_hash, key.hint, services.clock())
    return key.plaintext


async def register(request: Request) -> Response:
    """`POST /developers/apps`: register an app; its secret keys are shown on the answer, once."""
    services = services_of(request)
    found, member, fields = await read_member_form(services, request, "/developers")
    name = fields.get("name", "").strip()
    origins_text = fields.get("origins", "")
    error = None
    origins: list[str] = []
    if not name or len(name) > _MAX_NAME_LENGTH or not name.isprintable():
        error = f"Name the app (at most {_MAX_NAME_LENGTH} characters)."
    else:
        try:
            origins = parse_origins(origins_text)
        except OriginError as exc:
            error = f"Allowed origins: {exc}."
    if error is not None:
        apps = await services.store.member_apps(member.id)
        context = {"apps": apps, "error": error, "name": name, "origins": origins_text}
        return render(services, found, "developers.html", context, status=422)
    cap = services.settings.default_test_cap
    made = await register_app(services.store, name, cap, MODES, owner_member_id=member.id)
    await services.store.set_app_origins(made.app.id, origins)
    context = {"app": await own_app(services, member, made.app.id), "secrets": made.secret_keys, "created": True}
    return render(services, found, "secret_keys.html", context)


async def app_page(request: Request) -> Response:
    """`GET /developers/apps/{app_id}?mode=`: keys, origins, this month's top spenders, webhooks."""
    services = services_of(request)
    found, member = await member_visitor(services, request)
    app = await own_app(services, member, request.path_params["app_id"])
    mode: Mode = "live" if request.query_params.get("mode") == "live" else "test"
    context = await app_page_context(services, app, mode)
    context["notice"] = NOTICES.get(request.query_params.get("notice", ""))
    return render(services, found, "app.html", context)


async def app_page_context(services: Services, app: AppProfile, mode: Mode) -> dict[str, Any]:
    """What `app.html` shows of `app` in `mode` (the webhooks console renders it too, with its form's error)."""
    now = services.clock()
    window = window_containing(now)
    # Users whose funding the provider's hard ceiling stopped this month: listed even with nothing in the ledger.
    # Capped like the spenders, so a month when the ceiling refused thousands still makes a page of a few dozen rows.
    ceiling_users = await services.store.ceiling_hit_users(app.id, mode, window.key)
    month = await services.store.app_month(app.id, mode, window.key, top=TOP_USERS, named=ceiling_users[:TOP_USERS])
    listed = {user.app_user_id for user in month.users}
    listed_spenders = sum(1 for user in month.users if user.cost > 0)
    grants = await services.store.app_grants(app.id, mode, now - GRANTS_SHOWN_FOR)
    context: dict[str, Any] = {
        "app": app,
        "grants": [(grant, grant.state(now), _GRANT_STATES[grant.state(now)]) for grant in grants],
        "grant_prefix": GRANT_USER_PREFIX,
        "ceiling_users": set(ceiling_users),
        "ceiling_unlisted": len(set(ceiling_users) - listed),
        "keys": await services.store.app_keys(app.id),
        "mode": mode,
        "usage": month.users,
        "spenders": f"{month.spenders:,}",
        "plural": month.spenders != 1,
        "spent": month.spent,
        "listed_spenders": f"{listed_spenders:,}",
        "unlisted_spenders": f"{month.spenders - listed_spenders:,}" if month.spenders > listed_spenders else None,
        "window_start": window.start,
        "notice": None,
        "origins_text": "\n".join(app.allowed_origins),
        "allowance": await services.store.output_allowance(app.id),
        "default_allowance": services.settings.output_allowance_tokens,
        "default_reasoning_allowance": services.settings.reasoning_output_allowance_tokens,
        "error": None,
        "webhooks": await services.store.webhook_endpoints(app.id, mode),
        "webhook_form": {"url": "", "description": ""},
        "webhook_error": None,
    }
    return context


@dataclass(frozen=True, slots=True)
class _AppForm:
    """A form posted to one of the signed-in member's own apps."""

    services: Services
    visitor: Visitor
    app: AppProfile
    fields: dict[str, str]


async def _app_form(request: Request) -> _AppForm:
    """Read a form posted to `/developers/apps/{app_id}/…`: 404 unless the app is the signed-in member's."""
    services = services_of(request)
    visitor, member, fields = await read_member_form(services, request, "/developers")
    return _AppForm(services, visitor, await own_app(services, member, request.path_params["app_id"]), fields)


async def save_origins(request: Request) -> Response:
    """`POST /developers/apps/{app_id}/origins`: replace the allowed origins."""
    form = await _app_form(request)
    services, app, fields = form.services, form.app, form.fields
    try:
        origins = parse_origins(fields.get("origins", ""))
    except OriginError as exc:
        raise PageError(422, "Invalid origin", f"{exc}. Nothing was changed.") from None
    await services.store.set_app_origins(app.id, origins)
    return RedirectResponse(f"/developers/apps/{app.id}?notice=origins", 303)


async def save_allowance(request: Request) -> Response:
    """`POST /developers/apps/{app_id}/allowance`: the app's output allowance (empty: the server's defaults)."""
    form = await _app_form(request)
    services, app, fields = form.services, form.app, form.fields
    try:
        tokens = parse_allowance(fields.get("allowance", ""))
    except AllowanceError as exc:
        raise PageError(422, "Invalid output allowance", f"Enter {exc}. Nothing was changed.") from None
    await services.store.set_output_allowance(app.id, tokens)
    services.keys.forget()
    return RedirectResponse(f"/developers/apps/{app.id}?notice=allowance", 303)


async def create_secret(request: Request) -> Response:
    """`POST /developers/apps/{app_id}/keys`: a new secret key, shown once."""
    form = await _app_form(request)
    mode: Mode = "live" if form.fields.get("mode") == "live" else "test"
    plaintext = await _mint_secret(form.services, form.app.id, mode)
    context = {"app": form.app, "secrets": {mode: plaintext}, "created": False}
    return render(form.services, form.visitor, "secret_keys.html", context)


async def revoke_secret(request: Request) -> Response:
    """`POST /developers/apps/{app_id}/keys/{key_id}/revoke`: revoke a secret key."""
    form = await _app_form(request)
    services, app = form.services, form.app
    key_id = request.path_params["key_id"]
    if not any(key.id == key_id and key.kind == "secret" for key in await services.store.app_keys(app.id)):
        raise PageError(404, "Not found", "This app has no such secret key.")
    await services.store.revoke_key(app.id, key_id, services.clock())
    # This instance forgets at once; others within the key cache's few seconds.
    services.keys.forget()
    return RedirectResponse(f"/developers/apps/{app.id}?notice=revoked", 303)


routes = [
    Route("/developers", console, methods=["GET"]),
    Route("/developers/apps", register, methods=["POST"]),
    Route("/developers/apps/{app_id}", app_page, methods=["GET"]),
    Route("/developers/apps/{app_id}/origins", save_origins, methods=["POST"]),
    Route("/developers/apps/{app_id}/allowance", save_allowance, methods=["POST"]),
    Route("/developers/apps/{app_id}/keys", create_secret, methods=["POST"]),
    Route("/developers/apps/{app_id}/keys/{key_id}/revoke", revoke_secret, methods=["POST"]),
]

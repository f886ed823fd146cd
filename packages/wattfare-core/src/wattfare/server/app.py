"""The Wattfare ASGI application."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from wattfare.server.api import app_settings, connections, grants, models, openapi, probes, sessions, usage
from wattfare.server.api import webhooks as webhook_api
from wattfare.server.api.browser_cors import BROWSER_PATHS, BrowserCors
from wattfare.server.billing.meter import Meter
from wattfare.server.errors import ApiError, unavailable
from wattfare.server.instants import utc_now
from wattfare.server.observability import metrics
from wattfare.server.observability.middleware import ObservedRequests
from wattfare.server.observability.request_log import configure_logging
from wattfare.server.proxy import chat_completions as proxy
from wattfare.server.proxy import embeddings
from wattfare.server.proxy.direct_route import DirectRoute, ErrorHandler
from wattfare.server.server_send import KeepsServerSend
from wattfare.server.services import Services, build_upstreams, services_of
from wattfare.server.settings import Settings
from wattfare.server.store import Store, StoreUnavailableError, open_store
from wattfare.server.store.records import Mode
from wattfare.server.upstream.base import Upstream
from wattfare.server.web import (
    account,
    consent,
    developers,
    members,
    openrouter_link,
    password_reset,
    policies,
    webhook_console,
)
from wattfare.server.web import grants as grant_popup
from wattfare.server.web.render import STATIC, PageError, prefers_html, render
from wattfare.server.web.sessions import SignInRequired, visitor

# The collector's first generation: 700 allocations by default, i.e. several passes per request.
_GC_FIRST_GENERATION = 20_000

log = logging.getLogger("wattfare.server")


class _AnyText(PathConvertor):
    """A path parameter of any characters, line breaks too (Starlette's `path` stops at one).

    An app's own id for its user that holds a line break then reaches its handler, which refuses it as a 400
    naming `appUserId`, rather than matching no route (a 404).
    """

    regex = "(?s:.*)"


register_url_convertor("any_text", _AnyText())


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        if prefers_html(request):  # a person's browser gets a page; API clients and /api/* keep the JSON envelope
            return await _page_error(request, PageError(404, "Page not found", "There is no page at this address."))
        return ApiError(
            "invalid_request", f"No such endpoint: {request.method} {request.url.path}", status=404
        ).response()
    if exc.status_code == 405:
        return ApiError("invalid_request", f"Method {request.method} is not allowed here.", status=405).response()
    return ApiError("invalid_request", str(exc.detail), status=exc.status_code).response()


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    # Fail closed: without the database no request can be metered, so none is served.
    log.error("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return unavailable().response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged without the request body: prompts never reach the logs.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return ApiError("internal", "Internal error in Wattfare; retry shortly.").response()


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    services = services_of(request)
    found = await visitor(services, request)
    return render(services, found, "error.html", {"title": exc.title, "message": exc.message}, status=exc.status)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"/login?{urlencode({'next': exc.next_path})}", 303)


async def _button_script(request: Request) -> Response:
    # Loaded by apps' pages on other origins: cacheable briefly, usable with `crossorigin` and SRI.
    return FileResponse(
        STATIC / "wattfare.js",
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": "public, max-age=300",
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "X-Content-Type-Options": "nosniff",
        },
    )


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    upstreams: dict[Mode, Upstream] | None = None,
    clock: Callable[[], datetime] = utc_now,
    meter: Callable[[Services], Meter] | None = None,
) -> Starlette:
    """Build the Wattfare server; parts default to what `settings` (or the environment) describe.

    `meter` builds the meter from the other parts instead of the one `Services` builds (tests' doubles).
    """
    settings = settings or Settings.from_env()
    services = Services(
        settings=settings,
        store=store or open_store(settings.database_url, pool_size=settings.database_pool_size),
        upstreams=upstreams or build_upstreams(settings),
        clock=clock,
    )
    if meter is not None:
        services.meter = meter(services)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    v1 = "/api/v1"
    routes = [
        # POSTs are served by `DirectRoute` before they reach the router; the route still answers other methods (405).
        Route(f"{v1}/chat/completions", proxy.chat_completions, methods=["POST"]),
        # Metered as completions are, through the router: embeddings are not the hot path `DirectRoute` serves.
        Route(f"{v1}/embeddings", embeddings.embeddings, methods=["POST"]),
        Route(f"{v1}/sessions", sessions.create_session, methods=["POST"]),
        Route(f"{v1}/status", connections.status, methods=["GET"]),
        Route(f"{v1}/connections", connections.get_connection, methods=["GET"]),
        Route(f"{v1}/connections", connections.approve_connection, methods=["POST"]),
        Route(f"{v1}/connections", connections.revoke_connection, methods=["DELETE"]),
        Route(f"{v1}/connections/{{app_user_id:any_text}}", connections.disconnect_user, methods=["DELETE"]),
        Route(f"{v1}/grants", grants.create_grant, methods=["POST"]),
        Route(f"{v1}/grants/current", grants.current_grant, methods=["GET"]),
        Route(f"{v1}/models", models.list_models, methods=["GET"]),
        Route(f"{v1}/usage", usage.usage, methods=["GET"]),
        Route(f"{v1}/app", app_settings.get_app, methods=["GET"]),
        Route(f"{v1}/app", app_settings.update_app, methods=["PATCH"]),
        *webhook_api.routes,
        Route(f"{v1}/openapi.json", openapi.openapi_json, methods=["GET"]),
        # The operator's: liveness, readiness, Prometheus (README, "Operating Wattfare").
        Route("/healthz", probes.healthz, methods=["GET"]),
        Route("/readyz", probes.readyz, methods=["GET"]),
        Route("/metrics", probes.metrics_endpoint, methods=["GET"]),
        # The human side: members, the consent and grant popups, the account, the developer console, the button script.
        *members.routes,
        *password_reset.routes,
        *consent.routes,
        *grant_popup.routes,
        *account.routes,
        *openrouter_link.routes,
        *developers.routes,
        *webhook_console.routes,
        *policies.routes,
        Route("/wattfare.js", _button_script, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    error_handlers: dict[type[Exception], ErrorHandler] = {
        PageError: _page_error,
        SignInRequired: _sign_in_required,
        ApiError: _api_error,
        HTTPException: _http_error,
        StoreUnavailableError: _store_unavailable,
        Exception: _unexpected,
    }
    app = KeepsServerSend(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            # Outermost: every request, the proxy's included, gets its record, metrics and log line.
            Middleware(ObservedRequests, fixed_paths=(f"{v1}/chat/completions", *BROWSER_PATHS)),
            Middleware(
                DirectRoute,
                method="POST",
                path=f"{v1}/chat/completions",
                endpoint=proxy.chat_completions,
                error_handlers=error_handlers,
            ),
            Middleware(BrowserCors, services=services),
        ],
        exception_handlers=dict(error_handlers),
    )
    # A trailing slash is a wrong URL, not a redirect: clients should get the error envelope.
    app.router.redirect_slashes = False
    app.state.services = services
    return app


def create_served_app() -> Starlette:
    """The app as `wattfare serve` and `wattfare dev` run it: its log configured (see `tuned_for_serving`)."""
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return tuned_for_serving(create_app(settings))


def tuned_for_serving(app: Starlette) -> Starlette:
    """`app`, tuning the collector at start-up: for a process that serves nothing else.

    Start-up objects (modules, routes, the price book) live as long as the process: `gc.freeze()` takes
    them out of every collection, and a larger first generation runs the collector less often on a heap
    whose per-request garbage is mostly freed by reference counting anyway.
    """
    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def tuned(app: Starlette) -> AsyncGenerator[None]:
        async with lifespan(app):
            gc.collect()
            gc.freeze()
            gc.set_threshold(_GC_FIRST_GENERATION, 20, 20)
            try:
                yield
            finally:
                metrics.worker_exited()

    app.router.lifespan_context = tuned
    return app

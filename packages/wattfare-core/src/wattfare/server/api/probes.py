"""What an operator's load balancer and Prometheus read: `/healthz`, `/readyz` and `/metrics`.

- `/healthz` (liveness) answers without touching anything: the process serves HTTP.
- `/readyz` (readiness) reads the store once and looks at each mode's price list: 200 `{"status": "ready"}`
  when both can meter a request, else 503 `unavailable` in the error envelope, saying which check failed. A
  price list is stale when its last good refresh (or, before the first one, the start) is older than three
  refresh periods: metering at prices that old could charge users what the provider no longer charges.
- `/metrics` answers only a bearer token equal to `WATTFARE_METRICS_TOKEN`; with none set it does not exist
  (404, like any unknown path), so a deployment never exposes its figures by accident.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from starlette.requests import Request
from starlette.responses import Response

from wattfare.server.api.json_body import json_response
from wattfare.server.errors import ApiError
from wattfare.server.observability import metrics
from wattfare.server.services import Services, services_of
from wattfare.server.store.records import HoldCensus

# A store that does not answer a readiness probe within this is as good as down for it.
_STORE_PROBE_SECONDS = 5.0
# A price list whose last good refresh is older than this many refresh periods is stale.
_STALE_PERIODS = 3


async def healthz(request: Request) -> Response:
    """`GET /healthz`: the process is alive (it touches nothing, so a busy database never fails it)."""
    return json_response({"ok": True})


async def _census(services: Services) -> HoldCensus | None:
    """The store's holds, read once (the readiness probe's store check), or None when the store did not answer."""
    try:
        return await asyncio.wait_for(services.store.hold_census(), _STORE_PROBE_SECONDS)
    except Exception:  # unavailable, timed out, or refusing: not ready, whatever the reason
        return None


def _price_lists(services: Services) -> dict[str, dict[str, object]]:
    limit = _STALE_PERIODS * services.settings.price_refresh_seconds
    lists: dict[str, dict[str, object]] = {}
    for mode, book in services.prices.items():
        age = book.age_seconds()
        count = len(book.models())
        lists[mode] = {
            "source": book.source,
            "models": count,
            "ageSeconds": round(age, 3),
            "ok": count > 0 and age <= limit,
        }
    return lists


async def readyz(request: Request) -> Response:
    """`GET /readyz`: 200 when the store answers and every price list is usable, else 503 `unavailable`."""
    services = services_of(request)
    census = await _census(services)
    prices = _price_lists(services)
    checks: dict[str, object] = {"store": "ok" if census is not None else "unavailable", "prices": prices}
    failing = [] if census is not None else ["the store does not answer"]
    failing += [f"the {mode} price list is empty or stale" for mode, state in prices.items() if not state["ok"]]
    if failing:
        raise ApiError(
            "unavailable", f"Not ready: {'; '.join(failing)}.", extra={"checks": checks}, headers={"Retry-After": "5"}
        )
    return json_response({"status": "ready", **checks})


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _scrape_time(services: Services, census: HoldCensus | None, now: datetime) -> list[Metric]:
    reachable = GaugeMetricFamily("wattfare_store_reachable", "1 when the store answered this scrape's read, else 0.")
    reachable.add_metric([], 1 if census is not None else 0)
    families: list[Metric] = [reachable]
    if census is not None:
        open_holds = GaugeMetricFamily(
            "wattfare_holds_open", "Holds in the store now (every instance's, and dead ones)."
        )
        open_holds.add_metric([], census.open)
        oldest = GaugeMetricFamily(
            "wattfare_hold_oldest_age_seconds", "Age of the oldest hold in the store (0 when none is held)."
        )
        oldest.add_metric([], 0 if census.oldest is None else max(0.0, (now - census.oldest).total_seconds()))
        families += [open_holds, oldest]
    age = GaugeMetricFamily(
        "wattfare_price_list_age_seconds", "Seconds since a mode's price list was last refreshed.", labels=["mode"]
    )
    models = GaugeMetricFamily("wattfare_price_list_models", "Models a mode's price list can meter.", labels=["mode"])
    for mode, book in services.prices.items():
        age.add_metric([mode], book.age_seconds())
        models.add_metric([mode], len(book.models()))
    return [*families, age, models]


async def metrics_endpoint(request: Request) -> Response:
    """`GET /metrics`: Prometheus' text format, for the bearer of `WATTFARE_METRICS_TOKEN` (404 when unset)."""
    services = services_of(request)
    token = services.settings.metrics_token
    if token is None:
        raise ApiError("invalid_request", f"No such endpoint: {request.method} {request.url.path}", status=404)
    if not _authorized(request, token):
        raise ApiError(
            "auth", "Send 'Authorization: Bearer <WATTFARE_METRICS_TOKEN>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    census = await _census(services)
    body = metrics.exposition([metrics.ScrapeTime(_scrape_time(services, census, services.clock()))])
    return Response(body, 200, media_type=metrics.CONTENT_TYPE)

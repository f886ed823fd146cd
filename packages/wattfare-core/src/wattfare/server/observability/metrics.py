"""Prometheus metrics (prometheus-client): counted where things happen, exposed at `/metrics`.

Every label takes a bounded set of values: endpoints are the route table's templates, modes `test`/`live`,
codes the error envelope's, kinds fixed lists here. No user id, app id or model is ever a label (a model would
grow with the price list; the request log and `GET /usage` say which models). Each update is a few hundred
nanoseconds of CPU, made after the store's conditional writes, never inside them; the label children are
looked up once and kept (`_Children`), so the hot path does not take prometheus' lock on its label table.

Several workers (`wattfare serve --workers N`): `serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory
before the workers start, each writes its samples there, and whichever worker answers a scrape merges them
(`exposition`). A worker that exits marks its live gauges dead (`worker_exited`).

Values only known at scrape time (the oldest hold in the store, the price lists' age) are passed to
`exposition` by the endpoint that serves it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Final, Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # pyright: ignore[reportUnknownVariableType]
from prometheus_client.registry import Collector

from wattfare.server.observability.request_log import RequestRecord, current

MULTIPROC_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# How a hold ended (`wattfare_settlements_total{kind}`): the ledger's kinds, with a charge the cap cut short
# counted as `absorbed` (the operator absorbs the difference) rather than as `settled`.
SETTLEMENT_KINDS: Final = ("settled", "estimated", "released", "expired", "absorbed")
_LEDGER_KIND_LABEL: Final = {
    "charge": "settled",
    "estimated": "estimated",
    "released": "released",
    "expired": "expired",
}
# Why an upstream call failed (`wattfare_upstream_errors_total{kind}`).
UPSTREAM_ERROR_KINDS: Final = ("timeout", "unreachable", "refused_4xx", "refused_5xx", "malformed", "failed_answering")

_SECONDS_FAST: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SECONDS_REQUEST: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SECONDS_HOLD: Final = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0)

REQUESTS = Counter(
    "wattfare_requests",
    "Requests answered, by endpoint (method and route template), mode (test, live, none) and code "
    "(ok, an error code of the envelope, or 4xx/5xx for answers outside the API).",
    ["endpoint", "mode", "code"],
)
REQUEST_SECONDS = Histogram(
    "wattfare_request_duration_seconds",
    "Time from a request's arrival to its last byte (a stream's whole length), by endpoint.",
    ["endpoint"],
    buckets=_SECONDS_REQUEST,
)
HELD = Counter("wattfare_held_nano_usd", "Nano-USD held by admitted requests (their worst case), by mode.", ["mode"])
SPENT = Counter("wattfare_spent_nano_usd", "Nano-USD charged by settlements, by mode.", ["mode"])
ABSORBED = Counter(
    "wattfare_absorbed_nano_usd", "Nano-USD a cap cut from charges (the operator absorbs them), by mode.", ["mode"]
)
SETTLEMENTS = Counter("wattfare_settlements", "Holds ended, by kind: " + ", ".join(SETTLEMENT_KINDS) + ".", ["kind"])
HOLD_SECONDS = Histogram(
    "wattfare_hold_duration_seconds",
    "How long holds lived, from the reserve to the settlement's commit (not the sweep's expiries).",
    buckets=_SECONDS_HOLD,
)
HOLDS_IN_FLIGHT = Gauge(
    "wattfare_holds_in_flight",
    "Holds of requests running in this instance's processes.",
    multiprocess_mode="livesum",
)
UPSTREAM_TTFB = Histogram(
    "wattfare_upstream_ttfb_seconds",
    "Time from calling the model provider to its answer's headers, by mode and metered endpoint.",
    ["mode", "endpoint"],
    buckets=_SECONDS_REQUEST,
)
UPSTREAM_SECONDS = Histogram(
    "wattfare_upstream_duration_seconds",
    "Time from calling the model provider to the end of its relayed answer, by mode and metered endpoint.",
    ["mode", "endpoint"],
    buckets=_SECONDS_REQUEST,
)
UPSTREAM_ERRORS = Counter(
    "wattfare_upstream_errors",
    "Model provider failures, by mode and kind: " + ", ".join(UPSTREAM_ERROR_KINDS) + ".",
    ["mode", "kind"],
)
STORE_SECONDS = Histogram(
    "wattfare_store_duration_seconds",
    "Database calls, by operation (read, write, grouped_write, exclusive_write).",
    ["operation"],
    buckets=_SECONDS_FAST,
)
STORE_UNAVAILABLE = Counter("wattfare_store_unavailable", "Database calls that failed as unavailable (answered 503).")
RATE_LIMITED = Counter("wattfare_rate_limited", "Requests refused by a rate limit, by limit.", ["limit"])
CEILING_REACHED = Counter(
    "wattfare_provider_ceiling_reached", "Requests refused at a member's hard limit at the provider (the meter missed)."
)

M = TypeVar("M", Counter, Histogram)


class _Children(Generic[M]):
    """A metric's label children, looked up once per label values and kept (no lock or checks afterwards)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


_requests = _Children(REQUESTS)
_request_seconds = _Children(REQUEST_SECONDS)
_held = _Children(HELD)
_spent = _Children(SPENT)
_absorbed = _Children(ABSORBED)
_settlements = _Children(SETTLEMENTS)
_upstream_ttfb = _Children(UPSTREAM_TTFB)
_upstream_seconds = _Children(UPSTREAM_SECONDS)
_upstream_errors = _Children(UPSTREAM_ERRORS)
_store_seconds = _Children(STORE_SECONDS)
_rate_limited = _Children(RATE_LIMITED)


def request_done(endpoint: str, mode: str, code: str, seconds: float, record: RequestRecord) -> None:
    """A request was answered (its last byte sent, or its client gone); `record` is what it noted."""
    _requests(endpoint, mode, code).inc()
    _request_seconds(endpoint).observe(seconds)
    if record.upstream_started is not None and record.metered is not None:
        ended = record.started + seconds
        _upstream_seconds(record.mode or "none", record.metered).observe(ended - record.upstream_started)


def reserved(mode: str, amount: int) -> None:
    """A hold of `amount` nano-USD was placed for the current request."""
    _held(mode).inc(amount)
    record = current()
    if record is not None:
        record.held_nano = amount


def settled(mode: str, kind: str, charged: int, absorbed: int, lived_seconds: float | None) -> None:
    """A hold ended (`kind`: the ledger's), charging `charged` nano-USD; `absorbed` is what its cap cut off."""
    label = "absorbed" if absorbed > 0 and kind in ("charge", "estimated") else _LEDGER_KIND_LABEL.get(kind, kind)
    _settlements(label).inc()
    if charged:
        _spent(mode).inc(charged)
    if absorbed:
        _absorbed(mode).inc(absorbed)
    if lived_seconds is not None:
        HOLD_SECONDS.observe(max(0.0, lived_seconds))
        record = current()
        if record is not None:
            record.cost_nano = charged


def upstream_called() -> None:
    """The current request is calling its model provider now."""
    record = current()
    if record is not None:
        record.upstream_started = time.perf_counter()


def upstream_answered() -> None:
    """The model provider's answer (its status and headers) has come."""
    record = current()
    if record is not None and record.upstream_started is not None:
        record.upstream_ttfb = time.perf_counter() - record.upstream_started
        _upstream_ttfb(record.mode or "none", record.metered or "none").observe(record.upstream_ttfb)


def upstream_failed(kind: str) -> None:
    """The model provider failed the current request (`kind`: one of `UPSTREAM_ERROR_KINDS`)."""
    record = current()
    _upstream_errors(record.mode or "none" if record is not None else "none", kind).inc()


def store_timer(operation: str) -> Histogram:
    """The histogram a database call of `operation` observes its seconds in (looked up once, by the store)."""
    return _store_seconds(operation)


def store_unavailable() -> None:
    """A database call failed as unavailable."""
    STORE_UNAVAILABLE.inc()


def rate_limited(limit: str) -> None:
    """A request was refused by the rate limit named `limit`."""
    _rate_limited(limit).inc()


def provider_ceiling_reached() -> None:
    """The provider refused a request at a member's hard limit (`billing.provider_ceiling`)."""
    CEILING_REACHED.inc()


class LiveHolds(set[str]):
    """The meter's ids of holds in flight in this process, kept in `wattfare_holds_in_flight` as they change."""

    def add(self, element: str) -> None:
        """Hold `element` (a hold id)."""
        if element not in self:
            super().add(element)
            HOLDS_IN_FLIGHT.inc()

    def discard(self, element: object) -> None:
        """Let go of `element` (a hold id), if held."""
        if element in self:
            super().discard(element)
            HOLDS_IN_FLIGHT.dec()


# ------------------------------------------------------------------------------------------------ scraping


def multiprocess_dir() -> str | None:
    """Where this process's workers share their samples, when `wattfare serve` runs several."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def exposition(scrape_time: Sequence[Collector] = ()) -> bytes:
    """Every metric in Prometheus' text format: this process's (or all workers'), then `scrape_time`'s."""
    shared = multiprocess_dir()
    if shared is None:
        text = generate_latest(REGISTRY)
    else:
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=shared)
        text = generate_latest(merged)
    if scrape_time:
        extra = CollectorRegistry(auto_describe=True)
        for collector in scrape_time:
            extra.register(collector)
        text += generate_latest(extra)
    return text


class ScrapeTime(Collector):
    """A collector of values computed for one scrape (the store's oldest hold, the price lists' age)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        """Yield `families` when collected."""
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        """The families, as prometheus-client collects them."""
        return list(self._families)


def worker_exited() -> None:
    """Mark this worker's live gauges dead, so a merged scrape no longer counts them."""
    shared = multiprocess_dir()
    if shared is not None:
        mark_process_dead(os.getpid(), shared)

"""Part 1 of `pg_scale.py`: PostgreSQL round trips per proxied request, counted by a relay on the wire.

By database call, for a known user (non-streamed and streamed), a new user's first request and the first request
of a new month window; the background loops' idle traffic subtracted, /metrics' own counts beside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pg_scale_database import DATABASE, PG_HOST, PG_PORT, database_url, psql
from pg_scale_wattfare import chat, start_wattfare_pg, store_calls
from pg_wire_counter import WireCounter, empty_tally, tally
from servers import log


def per_request(
    busy: dict[str, dict[str, Any]], idle: dict[str, dict[str, Any]], requests: int, idle_share: float
) -> dict[str, Any]:
    """(busy - idle x idle_share) / requests for each call and field; the statement sequences seen while busy.

    `idle_share` is the busy period's length over the idle period's: the idle traffic scaled to the busy period.
    """
    out: dict[str, Any] = {}
    for call in sorted(set(busy) | set(idle)):
        b, i = busy.get(call, empty_tally()), idle.get(call, empty_tally())
        row = {field: (b[field] - i[field] * idle_share) / requests for field in b if field != "sequences"}
        row["round_trips_with_reset"] = row["round_trips"] + row["reset_round_trips"]
        row["idle_calls_scaled"] = i["calls"] * idle_share
        row["sequences"] = dict(b["sequences"].most_common(3))
        out[call] = row
    return out


def measure_scenario(
    counter: WireCounter, port: int, name: str, requests: int, send: Callable[[int], None], metrics_reads: float
) -> dict[str, Any]:
    """Send `requests` requests, then stay idle as long; round trips per request by database call."""
    time.sleep(0.5)  # what the previous scenario left (a settle, a poll) lands outside both windows
    metrics_before = store_calls(port)
    busy_start = time.monotonic()
    for index in range(requests):
        send(index)
    busy_end = time.monotonic()
    metrics_after = store_calls(port)
    time.sleep(0.5)
    # The loops poll once a second or so: an idle period of at least 5 s keeps their rate from being a guess.
    idle_start = time.monotonic()
    time.sleep(max(5.0, busy_end - busy_start))
    idle_end = time.monotonic()
    units = counter.units()
    busy = tally([u for u in units if busy_start <= u.ended <= busy_end])
    idle = tally([u for u in units if idle_start <= u.ended <= idle_end])
    calls = per_request(busy, idle, requests, (busy_end - busy_start) / (idle_end - idle_start))
    metrics = {
        # The reading after the requests did a read of its own (the holds census): not the requests'.
        key: (metrics_after.get(key, 0.0) - value - (metrics_reads if key == "count:read" else 0.0)) / requests
        for key, value in metrics_before.items()
        if key.startswith(("count:", "sum:"))
    }
    total = {
        field: sum(row[field] for row in calls.values())
        for field in ("round_trips_with_reset", "statements", "transaction_control", "prepares")
    }
    result = {
        "requests": requests,
        "seconds": busy_end - busy_start,
        "calls": calls,
        "total": total,
        "store_calls_per_request": metrics,
    }
    log(f"  {name:<40} {total['round_trips_with_reset']:5.2f} round trips/request, {total['statements']:.2f} stmts")
    return result


def part_trips(tmp: Path, upstream: str, app_secret: str, requests: int) -> dict[str, Any]:
    counter = WireCounter(PG_HOST, PG_PORT)
    relay_port = counter.start()
    try:
        server, port = start_wattfare_pg(tmp, "wattfare-relayed", upstream, database_url(relay_port), app_secret, 1)
        try:
            return _trip_scenarios(counter, port, app_secret, requests)
        finally:
            server.stop()
    finally:
        counter.stop()


def _trip_scenarios(counter: WireCounter, port: int, secret: str, requests: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with httpx.Client(timeout=30) as client:
        for index in range(20):  # every statement prepared on the pool's connections before anything is counted
            chat(client, port, secret, "known", stream=index % 2 == 1)
        # A /metrics reading reads the database itself (the holds census): counted, to take it off the requests'.
        first, second = store_calls(port), store_calls(port)
        results["metrics_read_store_calls"] = {k: second.get(k, 0) - v for k, v in first.items() if "count" in k}
        reads = results["metrics_read_store_calls"].get("count:read", 0.0)

        def known(stream: bool) -> Callable[[int], None]:
            return lambda _: chat(client, port, secret, "known", stream=stream)

        log("round trips per request, through the relay")
        results["known user, non-streamed"] = measure_scenario(
            counter, port, "known user", requests, known(False), reads
        )
        results["known user, streamed"] = measure_scenario(
            counter, port, "known user, streamed", requests, known(True), reads
        )

        def new_user(index: int) -> None:
            chat(client, port, secret, f"new-{index}", stream=False)

        results["first request of a new user"] = measure_scenario(
            counter, port, "first request of a new user", requests, new_user, reads
        )
        # A new month: the same users' counters rows moved to a past window (on a direct connection, not counted),
        # so each user's next request is the first of its window, as on the 1st of the month.
        psql(
            "UPDATE counters SET window_key = 'past-' || window_key WHERE connection_id IN "
            "(SELECT id FROM connections WHERE app_user_id LIKE 'new-%')",
            DATABASE,
        )
        results["first request of a new window"] = measure_scenario(
            counter, port, "first request of a new window", requests, new_user, reads
        )
    return results

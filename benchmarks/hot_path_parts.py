"""The hot path in pieces, without HTTP: SQLite statements per request, and µs of CPU per call of each part.

Used by `profile_wattfare.py` (it writes both into its report); each function provisions its own SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import standin
from load import request_body

# ---------------------------------------------------------------- SQLite statements per request


def count_statements(tmp: Path, upstream: str) -> dict[str, Any]:
    """Run the app in-process (uvicorn in a thread) with a trace callback on its SQLite connection."""
    import uvicorn
    from servers import provision_wattfare

    from wattfare.server.app import create_app
    from wattfare.server.settings import Settings

    db = tmp / "statements.db"
    secret = provision_wattfare(db, "1000000")
    settings = Settings.from_env(
        {
            "WATTFARE_DATABASE_URL": f"sqlite:///{db}",
            "WATTFARE_UPSTREAM": "openai-compatible",
            "WATTFARE_UPSTREAM_URL": upstream,
            "WATTFARE_UPSTREAM_KEY": "bench",
            "WATTFARE_TEST_UPSTREAM": "live",
            "WATTFARE_TEST_DEFAULT_CAP_USD": "1000000",
        }
    )
    app = create_app(settings)
    statements: list[str] = []
    store = app.state.services.store
    store._db.set_trace_callback(statements.append)  # the benchmark peeks; the server is untouched
    from processes import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/api/v1/chat/completions"
    headers = {"Authorization": f"Bearer {secret}", "content-type": "application/json"}
    cases: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=30) as client:
            for name, stream, user in (
                ("first request of a new user (auto-connect)", False, "new-user"),
                ("non-streamed, known user", False, "new-user"),
                ("streamed, known user", True, "new-user"),
            ):
                time.sleep(0.7)  # let the background loops (revocation poll) go quiet
                statements.clear()
                response = client.post(
                    base,
                    content=request_body(standin.MODEL, stream=stream),
                    headers=headers | {"Wattfare-User": user} | ({"accept": "text/event-stream"} if stream else {}),
                )
                assert response.status_code == 200, response.text
                sql = [s.split()[0] + " " + " ".join(s.split()[1:4]) for s in statements]
                writes = sum(s.startswith(("INSERT", "UPDATE", "DELETE")) for s in statements)
                cases[name] = {
                    "statements": len(statements),
                    "writes": writes,
                    "transactions": sum(s.startswith("BEGIN") for s in statements),
                    "sql": sql,
                }
    finally:
        server.should_exit = True
        thread.join(10)
    return cases


# ---------------------------------------------------------------- in-process micro-benchmarks


def micro(tmp: Path, n: int) -> dict[str, float]:
    """µs of CPU per call of the hot path's pieces, in-process, without HTTP (best of 3 passes)."""
    import logging
    import logging.config

    import uvicorn.config
    from servers import provision_wattfare

    from wattfare.metering import Budget, MeteredUsage, cost_of, decide_admission, window_containing
    from wattfare.server.access.keys import hash_key, new_request_id
    from wattfare.server.billing.meter import Meter
    from wattfare.server.billing.pricebook import PriceBook
    from wattfare.server.instants import utc_now
    from wattfare.server.proxy.completion_request import anonymous_user, parse_completion, upstream_body
    from wattfare.server.proxy.sse_frames import SSEFrames
    from wattfare.server.store import open_store
    from wattfare.server.store.records import NewHold, Settlement
    from wattfare.server.store.sqlite import SQLiteStore

    db = tmp / "micro.db"
    secret = provision_wattfare(db, "1000000")
    body = request_body(standin.MODEL, stream=False)
    results: dict[str, float] = {}

    def timed(name: str, fn: Any) -> None:
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for _ in range(n):
                fn()
            best = min(best, time.process_time() - started)
        results[name] = 1e6 * best / n

    completion = parse_completion(body)
    timed("parse_completion (orjson + checks + prompt_token_bound)", lambda: parse_completion(body))
    timed("anonymous_user (sha256)", lambda: anonymous_user("app_x", "bench-user"))
    timed(
        "upstream_body (orjson.dumps) + with_max_tokens",
        lambda: upstream_body(completion, end_user="wf_x").with_max_tokens(64),
    )
    timed("new_request_id (time + secrets.token_hex)", new_request_id)
    timed("window_containing(now)", lambda: window_containing(utc_now()))
    book = PriceBook(None, [json.loads(standin.models_body())["data"][0]])  # type: ignore[arg-type]
    model = book.get(standin.MODEL)
    assert model is not None
    now = utc_now()
    timed("pricing.worst_case", lambda: model.pricing.worst_case(now, 100))
    prices = model.pricing.at(now, 24)
    usage = MeteredUsage(prompt_tokens=24, completion_tokens=20)
    timed("cost_of (integer rates, cached per price set)", lambda: cost_of(usage, prices))
    budget = Budget(cap=10**15, spent=10**9, reserved=10**6)
    worst = model.pricing.worst_case(now, 100)
    timed(
        "decide_admission (integer rates)",
        lambda: decide_admission(
            budget, worst, prompt_token_bound=100, requested_max_tokens=64, model_max_output=16384
        ),
    )

    stream = standin.stream_body().encode()
    timed(
        f"SSEFrames.feed of a whole {stream.count(b'data:')}-event stream in one read", lambda: SSEFrames().feed(stream)
    )

    async def metering() -> None:
        store = open_store(f"sqlite:///{db}")
        await store.upgrade()
        key = await store.find_secret_key(hash_key(secret))
        assert key is not None
        meter = Meter(store, utc_now, hold_ttl=__import__("datetime").timedelta(seconds=900))
        await meter.reserve(key, "micro-user", model, prompt_token_bound=100, requested_max_tokens=64)
        best_reserve = best_settle = best_budget = float("inf")
        window = window_containing(utc_now()).key
        for _ in range(3):
            reserve_s = settle_s = 0.0
            for _ in range(n):
                t0 = time.process_time()
                held = await meter.reserve(key, "micro-user", model, prompt_token_bound=100, requested_max_tokens=64)
                t1 = time.process_time()
                await held.settle(usage)  # type: ignore[union-attr]
                t2 = time.process_time()
                reserve_s += t1 - t0
                settle_s += t2 - t1
            best_reserve, best_settle = min(best_reserve, reserve_s), min(best_settle, settle_s)
            t0 = time.process_time()
            for _ in range(n):
                await store.budget(key.app_id, key.mode, "micro-user", window)
            best_budget = min(best_budget, time.process_time() - t0)
        results["Meter.reserve (budget SELECT + pricing + 1 grouped write: UPDATE, INSERT)"] = 1e6 * best_reserve / n
        results["Meter.settle (1 grouped write: DELETE, SELECT, UPDATE, INSERT)"] = 1e6 * best_settle / n
        results["  SQLiteStore.budget (one SELECT ... JOIN)"] = 1e6 * best_budget / n
        connection = await store.get_connection(key.app_id, key.mode, "micro-user")
        assert connection is not None
        best_try = best_store_settle = float("inf")
        for _ in range(3):
            try_s = settle_s = 0.0
            for _ in range(n):
                at = utc_now()
                hold = NewHold(new_request_id(), connection.id, window, 1000, standin.MODEL, at, at)
                t0 = time.process_time()
                await store.try_reserve(hold)
                t1 = time.process_time()
                await store.settle(Settlement(hold.id, 500, prompt_tokens=24, completion_tokens=20), at)
                t2 = time.process_time()
                try_s += t1 - t0
                settle_s += t2 - t1
            best_try, best_store_settle = min(best_try, try_s), min(best_store_settle, settle_s)
        results["  SQLiteStore.try_reserve, one at a time (a group of one)"] = 1e6 * best_try / n
        results["  SQLiteStore.settle, one at a time (a group of one)"] = 1e6 * best_store_settle / n

        async def request_pair() -> None:
            at = utc_now()
            hold = NewHold(new_request_id(), connection.id, window, 1000, standin.MODEL, at, at)
            await store.try_reserve(hold)
            await store.settle(Settlement(hold.id, 500, prompt_tokens=24, completion_tokens=20), at)

        for size in (1, 8, 32):
            best = float("inf")
            for _ in range(3):
                t0 = time.process_time()
                for _ in range(max(1, n // size)):
                    await asyncio.gather(*(request_pair() for _ in range(size)))
                best = min(best, (time.process_time() - t0) / (max(1, n // size) * size))
            results[f"  reserve + settle per request, {size} at once (group commit)"] = 1e6 * best
        assert isinstance(store, SQLiteStore)  # a sqlite:/// URL opens the embedded store
        raw = store._db  # the benchmark measures the connection the store uses
        best_empty = best_tiny = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(n):
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("COMMIT")
            best_empty = min(best_empty, time.process_time() - t0)
            t0 = time.process_time()
            for _ in range(n):
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("UPDATE counters SET reserved = reserved + 0 WHERE rowid = 1")
                raw.execute("COMMIT")
            best_tiny = min(best_tiny, time.process_time() - t0)
        results["  empty BEGIN IMMEDIATE + COMMIT"] = 1e6 * best_empty / n
        results["  one-row UPDATE transaction (WAL append)"] = 1e6 * best_tiny / n
        await store.close()

    asyncio.run(metering())

    config = dict(uvicorn.config.LOGGING_CONFIG)
    config["handlers"] = {
        "access": {"formatter": "access", "class": "logging.FileHandler", "filename": str(tmp / "access.log")}
    }
    config["loggers"] = {"uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False}}
    logging.config.dictConfig(config)
    access = logging.getLogger("uvicorn.access")
    args = ("127.0.0.1:50000", "POST", "/api/v1/chat/completions", "1.1", 200)
    timed("uvicorn access log line (to a file)", lambda: access.info('%s - "%s %s HTTP/%s" %d', *args))
    return results

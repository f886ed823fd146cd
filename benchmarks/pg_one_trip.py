"""What one round trip to reserve and one to settle would buy on PostgreSQL, measured before the server changes.

The hot path's metering cycle (budget read, reserve, settle: what every proxied request does on the database) is
run in this process, against the benchmark's own database, three ways:

shipped          `PostgresStore` as `open_store` builds it for `wattfare serve`.
no pool reset    the same store, its asyncpg pool created with a `reset` that sends nothing. asyncpg's default
                 sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;` each time a
                 connection goes back to the pool: one more round trip per store call. Wattfare sets no session
                 state (no SET, LISTEN, cursor or session advisory lock; its one advisory lock is xact-scoped),
                 and asyncpg still rolls back a connection left inside a transaction.
one trip each    no pool reset, and the two writes as one statement each, no BEGIN/COMMIT (a single statement
                 is its own transaction):
                 - reserve: the cap guard's conditional UPDATE and the hold's INSERT in one data-modifying CTE
                   (`RESERVE`): the INSERT sees the UPDATE's RETURNING, so the hold exists iff the guard passed.
                   When it matched nothing (no counters row yet: a window's first request; or over the cap) the
                   shipped transaction runs instead, as today.
                 - settle: one call of a PL/pgSQL function (`SETTLE_FUNCTION`, which a migration would add):
                   take the hold, lock the counters row, and book the charge Python decided, all in the call.
                   The decision stays in `wattfare.metering`: Python computes `charge_for` with the cap not
                   binding (min of cost and hold, known from the hold it owns); the function only checks, on the
                   locked row, that the cap indeed does not bind and that no alert threshold is crossed, and
                   otherwise raises SQLSTATE WF001, which undoes the call (the hold is still there) and sends the
                   settle down the shipped path, where Python decides the clamp and the events as today. Grants
                   and credit-funded holds take the shipped path too.

Each way is measured for round trips (through `pg_wire_counter.WireCounter`), for latency of a cycle at
concurrency 1, and for cycles per second and CPU per cycle (this process: the client side; the database's
backends) at concurrency 16; ways take turns in interleaved rounds; medians. At the end the books must balance:
for every connection used, `spent` equals its ledger's sum and `reserved` its holds' sum.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # pyright: ignore[reportMissingTypeStubs]
from pg_wire_counter import WireCounter, tally
from servers import log

from wattfare.metering import THRESHOLDS, charge_for, window_containing
from wattfare.server.access.keys import new_id, new_request_id
from wattfare.server.store.postgres import PostgresStore
from wattfare.server.store.records import NewHold, Settlement
from wattfare.server.store.timestamps import to_text

USERS = 200
CONCURRENCY = 16
HOLD = 2_000_000  # nano-USD held per cycle, and (below) the cost charged: far under the benchmark's cap
COST = 600_000

# The counters row is upserted, so a window's first request needs no second try: a missing row is inserted holding
# the amount if it fits under the cap; an existing one is locked and updated only if it still fits (ON CONFLICT's
# WHERE is checked against the row's newest version, as an UPDATE's is under READ COMMITTED).
RESERVE = """
WITH held AS (
    INSERT INTO counters AS n (connection_id, window_key, reserved)
    SELECT $2, $3, $1 WHERE $1 <= (SELECT cap FROM connections WHERE id = $2 AND state = 'active')
    ON CONFLICT (connection_id, window_key) DO UPDATE SET reserved = n.reserved + EXCLUDED.reserved
    WHERE n.spent + n.reserved + EXCLUDED.reserved
          <= (SELECT cap FROM connections WHERE id = $2 AND state = 'active')
    RETURNING n.connection_id
)
INSERT INTO holds (id, connection_id, window_key, amount, model, created_at, expires_at, endpoint, grant_id)
SELECT $4, connection_id, $3, $1, $5, $6, $7, $8, NULL FROM held
"""

SETTLE_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_one_trip_settle(
    p_hold_id TEXT, p_charged BIGINT, p_absorbed BIGINT, p_kind TEXT, p_prompt_tokens BIGINT,
    p_completion_tokens BIGINT, p_now TEXT, p_thresholds INTEGER[]
) RETURNS TABLE (o_connection_id TEXT, o_window_key TEXT, o_spent BIGINT, o_reserved BIGINT, o_cap BIGINT,
                 o_mode TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    h RECORD;
    k RECORD;
BEGIN
    DELETE FROM holds WHERE id = p_hold_id
        RETURNING connection_id, window_key, amount, model, endpoint, grant_id INTO h;
    IF NOT FOUND THEN
        RETURN;  -- settled already (by the sweep, or a deferred write): no row, as `settle` answers None
    END IF;
    SELECT c.app_id, c.mode, c.app_user_id, c.cap, n.spent, n.alerted INTO k
        FROM connections c JOIN counters n ON n.connection_id = c.id AND n.window_key = h.window_key
        WHERE c.id = h.connection_id FOR UPDATE OF n;
    -- Python's charge assumed the cap does not bind and no threshold is crossed: anything else is its to decide.
    IF h.grant_id IS NOT NULL OR p_charged > h.amount OR k.spent + p_charged > k.cap
       OR (k.cap > 0 AND EXISTS (
           SELECT 1 FROM unnest(p_thresholds) t
           WHERE t > k.alerted AND (k.spent + p_charged)::NUMERIC * 100 >= t * k.cap::NUMERIC)) THEN
        RAISE EXCEPTION 'this settle needs the full path' USING ERRCODE = 'WF001';
    END IF;
    UPDATE counters SET reserved = reserved - h.amount, spent = spent + p_charged
        WHERE connection_id = h.connection_id AND window_key = h.window_key
        RETURNING spent, reserved INTO o_spent, o_reserved;
    INSERT INTO ledger (request_id, connection_id, app_id, mode, app_user_id, window_key, kind, model, amount,
                        absorbed, prompt_tokens, completion_tokens, created_at, endpoint)
        VALUES (p_hold_id, h.connection_id, k.app_id, k.mode, k.app_user_id, h.window_key, p_kind, h.model,
                p_charged, p_absorbed, p_prompt_tokens, p_completion_tokens, p_now, h.endpoint);
    o_connection_id := h.connection_id;
    o_window_key := h.window_key;
    o_cap := k.cap;
    o_mode := k.mode;
    RETURN NEXT;
END
$$
"""
SETTLE = "SELECT * FROM pg_one_trip_settle($1, $2, $3, $4, $5, $6, $7, $8)"

_BALANCED = """
SELECT COUNT(*) FROM counters n JOIN connections c ON c.id = n.connection_id
WHERE c.app_user_id LIKE 'cycle-%' AND (
    n.spent != (SELECT COALESCE(SUM(amount), 0) FROM ledger l
                WHERE l.connection_id = n.connection_id AND l.window_key = n.window_key)
    OR n.reserved != (SELECT COALESCE(SUM(amount), 0) FROM holds h
                      WHERE h.connection_id = n.connection_id AND h.window_key = n.window_key))
"""


async def _keep_session(connection: Any) -> None:
    """A pool `reset` that sends nothing (asyncpg still rolls back a connection left in a transaction)."""


class Way:
    """One way to run the metering cycle, on a store of its own."""

    def __init__(self, name: str, url: str, app_id: str, *, reset: bool, one_trip: bool) -> None:
        self.name = name
        self.url = url
        self.app_id = app_id
        self.reset = reset
        self.one_trip = one_trip
        self.store = PostgresStore(url, min_size=2, max_size=10)
        self.slow_reserves = 0
        self.slow_settles = 0

    async def open(self) -> None:
        if not self.reset:
            # Benchmark-side substitution: the engine creates its pool on first use unless one is there.
            self.store._postgres._pool = await asyncpg.create_pool(  # pyright: ignore[reportUnknownMemberType]
                self.url, min_size=2, max_size=10, timeout=5.0, command_timeout=10.0, reset=_keep_session
            )

    async def close(self) -> None:
        await self.store.close()

    async def cycle(self, user: str) -> None:
        """Budget read, reserve, settle: the database side of one proxied request."""
        now = datetime.now(UTC)
        window = window_containing(now).key
        snapshot = await self.store.budget(self.app_id, "test", user, window)
        assert snapshot is not None, user
        hold = NewHold(
            new_request_id(), snapshot.connection.id, window, HOLD, "bench/model", now, now + timedelta(minutes=15)
        )
        settlement = Settlement(hold.id, COST, prompt_tokens=24, completion_tokens=20, holds_credits=False)
        if self.one_trip:
            await self._reserve_one_trip(hold)
            await self._settle_one_trip(hold, settlement, now)
        else:
            assert await self.store.try_reserve(hold)
            assert await self.store.settle(settlement, now) is not None

    async def _reserve_one_trip(self, hold: NewHold) -> None:
        async with self.store._postgres.connection() as conn:
            status = await conn.execute(
                RESERVE,
                hold.amount,
                hold.connection_id,
                hold.window_key,
                hold.id,
                hold.model,
                to_text(hold.created_at),
                to_text(hold.expires_at),
                hold.endpoint,
            )
        if status != "INSERT 0 1":
            self.slow_reserves += 1
            assert await self.store.try_reserve(hold)

    async def _settle_one_trip(self, hold: NewHold, s: Settlement, now: datetime) -> None:
        # The pure rule, with the cap not binding (the function checks that it does not, on the locked row).
        charge = charge_for(s.charged, held=hold.amount, cap=hold.amount, spent=0)
        try:
            async with self.store._postgres.connection() as conn:
                row = await conn.fetchrow(
                    SETTLE,
                    s.hold_id,
                    charge.charged,
                    s.absorbed + charge.absorbed,
                    s.kind,
                    s.prompt_tokens,
                    s.completion_tokens,
                    to_text(now),
                    list(THRESHOLDS),
                )
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) != "WF001":
                raise
            self.slow_settles += 1
            assert await self.store.settle(s, now) is not None
            return
        assert row is not None


async def _timed(cycles: int, run: Callable[[int], Awaitable[None]]) -> list[float]:
    took = []
    for index in range(cycles):
        started = time.perf_counter()
        await run(index)
        took.append(time.perf_counter() - started)
    return took


# Reads the CPU our database's backends used since it was made: `read()["backends"]`, in seconds.
PostgresCpuMeter = Callable[[], Any]


async def measure(way: Way, cycles: int, postgres_cpu: PostgresCpuMeter) -> dict[str, float]:
    """c=1 latency per cycle, then c=16 rate, each with CPU per cycle of this process and of the database."""
    users = [f"cycle-{i}" for i in range(USERS)]
    async with way.store._postgres.connection() as conn:
        commit_ms = await commit_latency(conn, 20)
    postgres = await asyncio.to_thread(postgres_cpu)
    cpu = time.process_time()
    took = await _timed(cycles, lambda i: way.cycle(users[i % USERS]))
    client_c1 = time.process_time() - cpu
    pg_c1 = (await asyncio.to_thread(postgres.read))["backends"]

    async def worker(offset: int, count: int) -> None:
        for index in range(count):
            await way.cycle(users[(offset + index * CONCURRENCY) % USERS])

    many = cycles * 4
    per_task = many // CONCURRENCY
    postgres = await asyncio.to_thread(postgres_cpu)
    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(offset, per_task) for offset in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    client_many = time.process_time() - cpu
    pg_many = (await asyncio.to_thread(postgres.read))["backends"]
    done = per_task * CONCURRENCY
    return {
        "commit_ms_p50": commit_ms,
        "c1_cycle_ms_p50": 1000 * statistics.median(took),
        "c1_cycle_ms_p99": 1000 * statistics.quantiles(took, n=100)[98],
        "c1_client_cpu_ms": 1000 * client_c1 / cycles,
        "c1_postgres_cpu_ms": 1000 * pg_c1 / cycles,
        "c16_cycles_per_s": done / elapsed,
        "c16_client_cpu_ms": 1000 * client_many / done,
        "c16_postgres_cpu_ms": 1000 * pg_many / done,
    }


async def round_trips(url_via_relay: str, app_id: str, counter: WireCounter, reset: bool, one_trip: bool) -> Any:
    """Round trips and statements per cycle of one way, counted by the relay over 30 warm cycles."""
    way = Way("counted", url_via_relay, app_id, reset=reset, one_trip=one_trip)
    await way.open()
    try:
        for i in range(10):  # statements prepared on the pool's connections first
            await way.cycle(f"cycle-{i}")
        await asyncio.sleep(0.2)
        first = len(counter.units())
        for i in range(30):
            await way.cycle(f"cycle-{i % USERS}")
        await asyncio.sleep(0.2)
    finally:
        await way.close()
    calls = tally(counter.units()[first:])
    return {
        call: {
            "round_trips": (row["round_trips"] + row["reset_round_trips"]) / 30,
            "statements": row["statements"] / 30,
            "transaction_control": row["transaction_control"] / 30,
            "sequence": next(iter(row["sequences"]), ""),
        }
        for call, row in calls.items()
        if row["calls"] >= 30  # the cycle's own calls, not a pool's first connection
    }


async def exercise_edges(way: Way, app_id: str) -> dict[str, int]:
    """The prototype off its fast path: windows' first requests, and settles that cross an alert threshold.

    20 new users each make one request (their counters row does not exist yet: the upsert makes it); 5 users
    with a cap of twice the hold make 4 requests each, the 4th crossing 50% (the function refuses, and the
    shipped settle books it with its `budget.threshold` event). The books are checked with everything else.
    """
    now = datetime.now(UTC)
    reserves, settles = way.slow_reserves, way.slow_settles
    for i in range(20):
        await way.store.ensure_connection(new_id("conn"), app_id, f"cycle-new-{i}", "test", 10**18, now)
        await way.cycle(f"cycle-new-{i}")
    first_of_window = {"requests": 20, "slow_reserves": way.slow_reserves - reserves}
    for i in range(5):
        await way.store.ensure_connection(new_id("conn"), app_id, f"cycle-cap-{i}", "test", 2 * HOLD, now)
        for _ in range(4):
            await way.cycle(f"cycle-cap-{i}")
    return first_of_window | {"threshold_requests": 20, "slow_settles": way.slow_settles - settles}


async def commit_latency(conn: Any, samples: int = 50) -> float:
    """Median ms of one durable one-row INSERT (its own transaction): the floor of any write on this disk."""
    took = []
    for n in range(samples):
        started = time.perf_counter()
        await conn.execute("INSERT INTO pg_one_trip_probe VALUES ($1)", n)
        took.append(time.perf_counter() - started)
    return 1000 * statistics.median(took)


async def round_trip_latency(conn: Any, samples: int = 200) -> float:
    """Median ms of `SELECT 1` on a prepared statement: one round trip to the database over loopback."""
    statement = await conn.prepare("SELECT 1")
    took = []
    for _ in range(samples):
        started = time.perf_counter()
        await statement.fetchval()
        took.append(time.perf_counter() - started)
    return 1000 * statistics.median(took)


async def compare(url: str, app_id: str, postgres_cpu: PostgresCpuMeter, *, cycles: int, rounds: int) -> dict[str, Any]:
    """The three ways, measured in interleaved rounds; the books checked at the end."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SETTLE_FUNCTION)
        await conn.execute("CREATE TABLE IF NOT EXISTS pg_one_trip_probe (n INTEGER)")
    finally:
        await conn.close()
    setup = PostgresStore(url)
    now = datetime.now(UTC)
    for i in range(USERS):
        await setup.ensure_connection(new_id("conn"), app_id, f"cycle-{i}", "test", 10**18, now)
    await setup.close()
    specs = {
        "shipped": (True, False),
        "no pool reset": (False, False),
        "one trip each (prototype)": (False, True),
    }
    ways = {name: Way(name, url, app_id, reset=r, one_trip=o) for name, (r, o) in specs.items()}
    for way in ways.values():
        await way.open()
    try:
        for i in range(USERS):  # each user's counters row for this window exists before anything is timed
            await ways["shipped"].cycle(f"cycle-{i}")
        counter = WireCounter()
        relay_port = counter.start()
        try:
            via_relay = url.replace(":5432/", f":{relay_port}/")
            trips = {name: await round_trips(via_relay, app_id, counter, *specs[name]) for name in specs}
        finally:
            counter.stop()
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
        names = list(ways)
        for rnd in range(rounds):
            for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                row = await measure(ways[name], cycles, postgres_cpu)
                runs[name].append(row)
                log(
                    f"  what-if {name:<26} commit {row['commit_ms_p50']:.2f} ms, "
                    f"c=1 {row['c1_cycle_ms_p50']:.2f} ms/cycle  "
                    f"c=16 {row['c16_cycles_per_s']:.0f} cycles/s, client {row['c16_client_cpu_ms']:.3f} "
                    f"+ pg {row['c16_postgres_cpu_ms']:.3f} ms cpu/cycle"
                )
        edges = await exercise_edges(ways["one trip each (prototype)"], app_id)
    finally:
        for way in ways.values():
            await way.close()
    conn = await asyncpg.connect(url)
    try:
        unbalanced = int(await conn.fetchval(_BALANCED))
        commit_ms = await commit_latency(conn)
        round_trip_ms = await round_trip_latency(conn)
    finally:
        await conn.close()
    return {
        "cycles": cycles,
        "rounds": rounds,
        "concurrency": CONCURRENCY,
        "round_trips": trips,
        "runs": runs,
        "median": {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in runs.items()},
        "slow_path": {name: {"reserves": w.slow_reserves, "settles": w.slow_settles} for name, w in ways.items()},
        "edges": edges,
        "unbalanced_counters_rows": unbalanced,
        "commit_ms_p50": commit_ms,
        "round_trip_ms_p50": round_trip_ms,
    }


def markdown(whatif: dict[str, Any]) -> list[str]:
    lines = [
        "What one round trip each would buy: the metering cycle (budget read, reserve, settle) in-process on "
        f"PostgreSQL, median of {whatif['rounds']} rounds; counters rows out of balance afterwards: "
        f"{whatif['unbalanced_counters_rows']}. One durable one-row INSERT takes {whatif['commit_ms_p50']:.2f} ms "
        "(p50) on this disk: each of a cycle's two commits waits for that. One round trip (`SELECT 1`) takes "
        f"{whatif['round_trip_ms_p50']:.3f} ms over loopback.",
        "",
        "| way | round trips: read / reserve / settle | cycle p50 / p99 ms (c=1) | cycles/s (c=16) "
        "| CPU ms/cycle (c=16): client / PG backends |",
        "|---|---|---|---|---|",
    ]
    for name, row in whatif["median"].items():
        trips = whatif["round_trips"][name]
        cells = " / ".join(
            f"{trips[c]['round_trips']:.0f}" if c in trips else "?" for c in ("budget read", "reserve", "settle")
        )
        lines.append(
            f"| {name} | {cells} | {row['c1_cycle_ms_p50']:.2f} / {row['c1_cycle_ms_p99']:.2f} | "
            f"{row['c16_cycles_per_s']:,.0f} | {row['c16_client_cpu_ms']:.3f} / {row['c16_postgres_cpu_ms']:.3f} |"
        )
    lines.append("")
    return lines

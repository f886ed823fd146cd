"""A big Wattfare database for `ledger_scale.py`: N ledger rows over U users and 12 months, written directly.

The app the benchmark calls is provisioned the way the tests do it (`tests.support.wattfare_server.provision`:
migrations, the app, its keys); everything else is written straight into the tables, as the server itself would
have left them after a year of traffic:

- the main app's users are connections `bench-0` … (test mode: the benchmark's secret key reaches them, and wrk's
  `bench-<n>` users are the first thousand of them); 19 other apps share a tenth of the users (live mode);
- one member owns 20 live connections, one in each of 20 apps, with a few thousand requests each, and a
  web session whose cookie the benchmark sends to `/account`;
- the ledger, in time order as settles append it: equal shares per calendar month over the last 12 (the
  current month's share squeezed into the days it has had), users drawn with a heavy tail (Pareto weights:
  a few users make most requests, as in real traffic), six chat models and one embeddings model, realistic
  token counts and prices, ids as the server mints them (`req_<microsecond hex><random>`, time-ordered);
- counters for every (connection, window) the ledger touches, their `spent` the ledger's sum, as settles keep it.

The same seed gives the same rows on both engines: the generator runs once per database.
PostgreSQL is filled with COPY (asyncpg's binary `copy_records_to_table`), SQLite with `executemany` in one
transaction with the journal and fsync off. Indexes are in place while rows go in, so their pages fill the way
a year of appends fills them (an index built after the load would be denser than a real one).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

import asyncpg

from wattfare.metering import window_containing, window_of_key
from wattfare.server.store.timestamps import to_text

# (model, endpoint, nano-USD per prompt token, per completion token): OpenRouter-like prices.
MODELS: tuple[tuple[str, str, int, int], ...] = (
    ("openai/gpt-4o-mini", "chat.completions", 150, 600),
    ("openai/gpt-4o", "chat.completions", 2_500, 10_000),
    ("anthropic/claude-3.5-sonnet", "chat.completions", 3_000, 15_000),
    ("google/gemini-flash-1.5", "chat.completions", 75, 300),
    ("meta-llama/llama-3.1-70b-instruct", "chat.completions", 120, 300),
    ("mistralai/mistral-small", "chat.completions", 200, 600),
    ("openai/text-embedding-3-small", "embeddings", 20, 0),
)
MODEL_WEIGHTS = (40, 10, 12, 15, 8, 5, 10)
# Most requests are charged as metered; a few are estimated (the upstream sent no usage), released (nothing
# reached a model) or expired (a dead process's hold, charged in full by the sweeper).
KINDS = (("charge", 965), ("estimated", 15), ("released", 15), ("expired", 5))
OTHER_APPS = 19
MEMBER_CONNECTIONS = 20
MEMBER_ROWS_PER_CONNECTION = 2_500  # ~7 requests a day each: a member who uses 20 apps daily
MEMBER_COOKIE = "bench-member-session-cookie-0123456789abcdef"  # 256 bits in real life; any string works
MONTHS = 12
LEDGER_COLUMNS = (
    "request_id",
    "connection_id",
    "app_id",
    "mode",
    "app_user_id",
    "window_key",
    "kind",
    "model",
    "amount",
    "absorbed",
    "prompt_tokens",
    "completion_tokens",
    "created_at",
    "endpoint",
)
CONNECTION_COLUMNS = ("id", "app_id", "app_user_id", "mode", "state", "cap", "created_at", "updated_at", "member_id")
USER_CAP = 50_000_000_000  # $50 a month
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BATCH = 50_000

LedgerRow = tuple[str, str, str, str, str, str, str, str, int, int, int, int, str, str]
ConnectionRow = tuple[str, str, str, str, str, int, str, str, str | None]


@dataclass(frozen=True)
class Size:
    """How big: ledger rows and connections (users) in all."""

    rows: int
    users: int


@dataclass
class Population:
    """Who the rows belong to: apps, connections and the member, with each connection's share of requests."""

    main_app_id: str
    other_apps: list[str]
    connections: list[ConnectionRow]
    cum_weights: list[float]
    member_id: str
    member_connection_ids: list[str]
    main_user_count: int
    heaviest_main_user: str
    seed: int
    months: list[str] = field(default_factory=list)


def _id(rng: random.Random, prefix: str) -> str:
    """An id shaped like `access.keys.new_id`'s (same length), drawn from the seeded generator."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789xy"
    return f"{prefix}_{''.join(rng.choice(alphabet) for _ in range(16))}"


def population(size: Size, main_app_id: str, now: datetime, seed: int = 20) -> Population:
    """The apps, connections and member of a database of `size`, around the provisioned main app."""
    rng = random.Random(seed)
    other_apps = [_id(rng, "app") for _ in range(OTHER_APPS)]
    member_id = _id(rng, "mem")
    created = to_text(now - timedelta(days=400))
    others = max(size.users // 10 - MEMBER_CONNECTIONS, OTHER_APPS)
    main_users = size.users - others - MEMBER_CONNECTIONS
    connections: list[ConnectionRow] = [
        (_id(rng, "conn"), main_app_id, f"bench-{n}", "test", "active", USER_CAP, created, created, None)
        for n in range(main_users)
    ]
    connections += [
        (_id(rng, "conn"), other_apps[n % OTHER_APPS], f"user-{n}", "live", "active", USER_CAP, created, created, None)
        for n in range(others)
    ]
    member_apps = [main_app_id, *other_apps][:MEMBER_CONNECTIONS]
    member = [
        (_id(rng, "conn"), app, f"member-{n}", "live", "active", USER_CAP, created, created, member_id)
        for n, app in enumerate(member_apps)
    ]
    connections += member
    # A heavy tail (Pareto, alpha 1.5): the busiest of 100,000 users makes a few thousand requests a month.
    # Clipped at 1,000x the lightest, so no single user is most of a small database.
    weights = [min(rng.paretovariate(1.5), 1000.0) for _ in range(main_users + others)]
    member_rows = min(MEMBER_ROWS_PER_CONNECTION, size.rows // 400) * MEMBER_CONNECTIONS
    member_weight = sum(weights) * member_rows / max(size.rows - member_rows, 1) / MEMBER_CONNECTIONS
    weights += [member_weight] * MEMBER_CONNECTIONS
    heaviest = max(range(main_users), key=lambda n: weights[n])
    return Population(
        main_app_id=main_app_id,
        other_apps=other_apps,
        connections=connections,
        cum_weights=list(accumulate(weights)),
        member_id=member_id,
        member_connection_ids=[row[0] for row in member],
        main_user_count=main_users,
        heaviest_main_user=f"bench-{heaviest}",
        seed=seed,
        months=month_keys(now),
    )


def month_keys(now: datetime) -> list[str]:
    """The last `MONTHS` window keys, the current one last."""
    keys = [window_containing(now).key]
    while len(keys) < MONTHS:
        keys.insert(0, window_containing(window_of_key(keys[0]).start - timedelta(microseconds=1)).key)
    return keys


def ledger_rows(size: Size, people: Population, now: datetime) -> Iterator[LedgerRow]:
    """`size.rows` ledger rows in time order, equal shares per month (the current one up to a minute ago)."""
    rng = random.Random(people.seed + 1)
    indices = range(len(people.connections))
    models = range(len(MODELS))
    kinds = [kind for kind, _ in KINDS]
    kind_weights = [weight for _, weight in KINDS]
    # Token counts drawn from fixed tables of log-normal samples: the same shape, a tenth of the time per row.
    prompts = [int(rng.lognormvariate(6.0, 1.0)) + 1 for _ in range(4096)]  # median ~400 tokens
    completions = [int(rng.lognormvariate(5.0, 1.0)) + 1 for _ in range(4096)]  # median ~150 tokens
    per_month = size.rows // MONTHS
    for month_number, key in enumerate(people.months):
        window = window_of_key(key)
        end = min(window.end, now - timedelta(minutes=1))
        count = per_month if month_number < MONTHS - 1 else size.rows - per_month * (MONTHS - 1)
        start_us = (window.start - _EPOCH) // timedelta(microseconds=1)
        span_us = (end - window.start) // timedelta(microseconds=1)
        step = span_us / count
        done = 0
        while done < count:
            batch = min(_BATCH, count - done)
            whose = rng.choices(indices, cum_weights=people.cum_weights, k=batch)
            which = rng.choices(models, weights=MODEL_WEIGHTS, k=batch)
            how = rng.choices(kinds, weights=kind_weights, k=batch)
            for offset in range(batch):
                micros = start_us + int((done + offset + rng.random()) * step)
                connection = people.connections[whose[offset]]
                model, endpoint, prompt_price, completion_price = MODELS[which[offset]]
                kind = how[offset]
                if kind == "released":
                    prompt = completion = amount = 0
                else:
                    prompt = prompts[rng.getrandbits(12)]
                    completion = 0 if endpoint == "embeddings" else completions[rng.getrandbits(12)]
                    amount = prompt * prompt_price + completion * completion_price
                yield (
                    f"req_{micros:013x}{rng.getrandbits(48):012x}",
                    connection[0],
                    connection[1],
                    connection[3],
                    connection[2],
                    key,
                    kind,
                    model,
                    amount,
                    0,
                    prompt,
                    completion,
                    _instant_text(micros),
                    endpoint,
                )
            done += batch


def _instant_text(micros: int) -> str:
    """`timestamps.to_text` of an instant given in microseconds since the epoch, without building a datetime."""
    day, rest = divmod(micros, 86_400_000_000)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = _DAYS[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
    seconds, fraction = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{fraction:06d}+00:00"


_DAYS: dict[int, str] = {}


def session_hash() -> str:
    """What `web_sessions.id_hash` keeps for the member's cookie (web/sessions.py: SHA-256 hex)."""
    return hashlib.sha256(MEMBER_COOKIE.encode()).hexdigest()


def _member_rows(people: Population, now: datetime) -> tuple[tuple[object, ...], tuple[object, ...]]:
    member = (people.member_id, "member@bench.example", "not-a-real-hash", to_text(now - timedelta(days=400)))
    session = (session_hash(), people.member_id, to_text(now), to_text(now + timedelta(days=14)))
    return member, session


def _app_rows(people: Population, now: datetime) -> list[tuple[object, ...]]:
    created = to_text(now - timedelta(days=400))
    return [(app_id, f"Other app {n}", 10_000_000_000, created) for n, app_id in enumerate(people.other_apps)]


_COUNTERS = (
    "INSERT INTO counters (connection_id, window_key, spent) "
    "SELECT connection_id, window_key, SUM(amount) FROM ledger GROUP BY connection_id, window_key"
)


def seed_sqlite(path: Path, size: Size, people: Population, now: datetime) -> float:
    """Fill a provisioned SQLite file; seconds taken."""
    started = time.monotonic()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        # Journal and fsync off for the load only; the server's own settings (WAL) are put back after it.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -1000000")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO apps (id, name, default_test_cap, created_at) VALUES (?, ?, ?, ?)", _app_rows(people, now)
        )
        member, session = _member_rows(people, now)
        db.execute("INSERT INTO members (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)", member)
        db.execute("INSERT INTO web_sessions (id_hash, member_id, created_at, expires_at) VALUES (?, ?, ?, ?)", session)
        columns = ", ".join(CONNECTION_COLUMNS)
        db.executemany(f"INSERT INTO connections ({columns}) VALUES ({', '.join('?' * 9)})", people.connections)
        ledger = ", ".join(LEDGER_COLUMNS)
        db.executemany(
            f"INSERT INTO ledger ({ledger}) VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})",
            ledger_rows(size, people, now),
        )
        db.execute(_COUNTERS)
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    return time.monotonic() - started


async def _seed_postgres(url: str, size: Size, people: Population, now: datetime) -> None:
    db = await asyncpg.connect(url, timeout=10)
    try:
        await db.copy_records_to_table(
            "apps", records=_app_rows(people, now), columns=("id", "name", "default_test_cap", "created_at")
        )
        member, session = _member_rows(people, now)
        await db.copy_records_to_table(
            "members", records=[member], columns=("id", "email", "password_hash", "created_at")
        )
        await db.copy_records_to_table(
            "web_sessions", records=[session], columns=("id_hash", "member_id", "created_at", "expires_at")
        )
        await db.copy_records_to_table("connections", records=people.connections, columns=CONNECTION_COLUMNS)
        await db.copy_records_to_table("ledger", records=ledger_rows(size, people, now), columns=LEDGER_COLUMNS)
        await db.execute(_COUNTERS)
        # What autovacuum would have done over a year: statistics for the planner, the visibility map.
        await db.execute("VACUUM ANALYZE")
    finally:
        await db.close()


def seed_postgres(url: str, size: Size, people: Population, now: datetime) -> float:
    """Fill a provisioned PostgreSQL database; seconds taken."""
    started = time.monotonic()
    asyncio.run(_seed_postgres(url, size, people, now))
    return time.monotonic() - started

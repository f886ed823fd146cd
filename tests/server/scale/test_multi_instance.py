"""Three `wattfare serve` instances on one PostgreSQL database, as behind a load balancer.

The storm spreads thousands of requests round-robin over the instances for twenty app users whose caps
are worth a few dozen answers each, so every user's last dollars are raced for by requests on all three
instances at once. The cap guarantee must hold across processes: no settled spend over a cap, refusals
are `budget_exceeded`, ledger and counters agree, and no hold is left behind. Then a revocation made
through one instance must stop streams in flight on the others within a second.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal

import anyio
import httpx
import pytest

from tests.server.process.sse_wire import chunks, data_fields, decoded
from tests.server.scale.figures import record
from tests.support.ledger import AsyncLedger
from tests.support.wattfare_server import Deployment
from wattfare.metering import usd_to_nanos

pytestmark = [pytest.mark.postgres, pytest.mark.anyio, pytest.mark.xdist_group("scale")]

USERS = 20
REQUESTS = 2_100
CONCURRENCY = 64
TOKEN_CAP_USD = "0.0015"  # ~33 answers of 20 tokens at the stand-in's prices
UPSTREAM_COST_USD = "0.000123"
COST_CAP_USD = "0.002"  # 16 answers at the upstream's reported cost
COST_USERS = 4  # of the twenty, these use a model whose upstream reports its own `usage.cost`
MESSAGES = [{"role": "user", "content": "storm"}]
TIMEOUT = httpx.Timeout(60.0)  # per request: the machine is shared; the test bounds the whole run instead


@dataclass(frozen=True)
class Outcome:
    """What one client saw."""

    user: str
    status: int
    stream: bool
    code: str | None = None
    charged: Decimal | None = None
    stream_error: str | None = None
    message: str | None = None


async def fire(client: httpx.AsyncClient, user: str, model: str, *, stream: bool, max_tokens: int | None) -> Outcome:
    body: dict[str, object] = {"model": model, "messages": MESSAGES, "stream": stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    headers = {"Wattfare-User": user}
    async with client.stream("POST", "/chat/completions", json=body, headers=headers) as response:
        content = await response.aread()
    if response.status_code != 200:
        error = decoded(content.decode()).get("error") or {}
        return Outcome(user, response.status_code, stream, code=error.get("code"), message=error.get("message"))
    if not stream:
        return Outcome(user, 200, stream, charged=Decimal(response.headers["wattfare-cost-usd"]))
    events = chunks(content)
    if data_fields(content)[-1] != "[DONE]":
        return Outcome(user, 200, stream, stream_error="no [DONE]")
    if "error" in events[-1]:
        return Outcome(user, 200, stream, stream_error=events[-1]["error"]["code"])
    return Outcome(user, 200, stream, charged=events[-1]["wattfare"]["costUsd"])


async def test_storm_across_three_instances_never_breaks_a_cap(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:8]
    prefix = f"storm-{run}-"
    users = [f"{prefix}{index:02d}" for index in range(USERS)]
    cost_users = set(users[:COST_USERS])
    caps = {user: COST_CAP_USD if user in cost_users else TOKEN_CAP_USD for user in users}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY, keepalive_expiry=2.0)
    clients = [deployment.client(index, limits=limits, timeout=TIMEOUT) for index in range(len(deployment.instances))]
    outcomes: list[Outcome] = []
    in_flight, most_in_flight = 0, 0
    jobs = iter(range(REQUESTS))

    async def one(index: int) -> None:
        nonlocal in_flight, most_in_flight
        # 20 users and 3 instances are coprime: every user's requests land on every instance in turn.
        user, client = users[index % USERS], clients[index % len(clients)]
        model = f"standin/cost-{UPSTREAM_COST_USD}" if user in cost_users else "standin/ok"
        # Without max_tokens Wattfare holds all the user can still afford; with it, a small slice.
        max_tokens = None if index % 5 == 0 else (100 if user in cost_users else 20)
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            outcomes.append(await fire(client, user, model, stream=index % 2 == 1, max_tokens=max_tokens))
        finally:
            in_flight -= 1

    async def worker() -> None:
        for index in jobs:  # one shared iterator: each index is taken by exactly one worker
            await one(index)

    try:
        for user, cap in caps.items():
            # The cap as a JSON number written from its decimal string: money never passes through a float.
            limit = f'{{"appUserId": "{user}", "requestLimit": {{"monthlyUsd": {cap}}}}}'
            session = await clients[users.index(user) % len(clients)].post(
                "/sessions", content=limit, headers={"content-type": "application/json"}
            )
            assert session.status_code == 200, session.text
        started = time.monotonic()
        with anyio.fail_after(100):
            async with anyio.create_task_group() as group:
                for _ in range(CONCURRENCY):
                    group.start_soon(worker)
        wall = time.monotonic() - started
    finally:
        for client in clients:
            await client.aclose()

    assert len(outcomes) == REQUESTS
    assert most_in_flight == CONCURRENCY
    unexpected = [outcome for outcome in outcomes if outcome.status not in (200, 402)]
    assert unexpected == [], Counter((o.status, o.code, o.message) for o in unexpected)
    refused = [outcome for outcome in outcomes if outcome.status == 402]
    assert {outcome.code for outcome in refused} == {"budget_exceeded"}
    assert [outcome for outcome in outcomes if outcome.stream_error] == []

    books = AsyncLedger(deployment.database_url)
    accounts = {account.app_user_id: account for account in await books.assert_balanced(prefix)}
    assert sorted(accounts) == users
    told: dict[str, Decimal] = defaultdict(Decimal)
    for outcome in outcomes:
        if outcome.charged is not None:
            told[outcome.user] += outcome.charged
    entries = await books.entries(app_user_prefix=prefix)
    overspend = sum(max(0, account.spent - account.cap) for account in accounts.values())
    for user, cap in caps.items():
        account = accounts[user]
        mine = [outcome for outcome in outcomes if outcome.user == user]
        answered = [outcome for outcome in mine if outcome.status == 200]
        assert account.cap == usd_to_nanos(cap)
        assert account.spent <= account.cap
        assert account.spent == account.ledger_total
        # What the clients were told they paid is exactly what the books say, one ledger row per answer.
        assert usd_to_nanos(told[user]) == account.spent
        assert len(answered) == account.ledger_entries
        # Sensible: answered until the cap, refused after, and most of the budget really spent.
        assert 0 < len(answered) < len(mine)
        assert account.spent >= account.cap // 2
    assert {entry.kind for entry in entries} == {"charge"}
    # The upstream's own cost is charged, except where it ran past the hold: the excess is absorbed, not billed.
    cost_entries = [entry for entry in entries if entry.app_user_id in cost_users]
    assert {entry.amount + entry.absorbed for entry in cost_entries} == {usd_to_nanos(UPSTREAM_COST_USD)}
    assert overspend == 0
    assert "Traceback" not in deployment.logs()

    streamed = [outcome for outcome in outcomes if outcome.stream]
    record(
        "storm",
        "Multi-instance storm",
        [
            ("server instances (`wattfare serve`, one PostgreSQL database)", len(deployment.instances)),
            ("requests (spread round-robin over the instances)", len(outcomes)),
            ("concurrency (requests in flight at once)", most_in_flight),
            ("app users (each with its own small cap)", USERS),
            ("caps", f"${TOKEN_CAP_USD} ({USERS - COST_USERS} users), ${COST_CAP_USD} ({COST_USERS} users)"),
            ("streamed / not streamed", f"{len(streamed)} / {len(outcomes) - len(streamed)}"),
            ("answered (200)", len(outcomes) - len(refused)),
            ("refused (402 `budget_exceeded`)", len(refused)),
            ("other statuses, stream errors", 0),
            ("ledger rows (= answers)", len(entries)),
            ("settled spend over a cap (overspend found)", f"{overspend} nano-USD"),
            ("holds left behind", 0),
            ("ledger sum == counters.spent, for every user", "yes"),
            ("wall time", f"{wall:.1f} s ({len(outcomes) / wall:.0f} requests/s on a shared machine)"),
        ],
    )


SLOW = {"model": "standin/slow", "messages": [{"role": "user", "content": "Take your time."}], "stream": True}
STREAMS_PER_INSTANCE = 3
REVOCATION_WITHIN = 1.5  # the poll runs twice a second; the rest is slack for a shared machine


async def test_revocation_through_one_instance_stops_streams_on_the_others(deployment: Deployment) -> None:
    user = f"revoke-{uuid.uuid4().hex[:8]}"
    first, second, revoker = (deployment.client(index, timeout=TIMEOUT) for index in range(3))
    started = anyio.Event()
    running = 0
    endings: list[tuple[list[str], float]] = []
    revoked_at = float("inf")
    total = 2 * STREAMS_PER_INSTANCE

    async def stream(client: httpx.AsyncClient) -> None:
        nonlocal running
        async with client.stream("POST", "/chat/completions", json=SLOW, headers={"Wattfare-User": user}) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            async for line in lines:
                if line.startswith("data:"):
                    break
            running += 1
            if running == total:
                started.set()
            rest = [line.removeprefix("data:").strip() async for line in lines if line.startswith("data:")]
        endings.append((rest, time.monotonic()))

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                # Streams on instances 0 and 1; the revocation goes through instance 2, which serves none.
                for client in (first, second) * STREAMS_PER_INSTANCE:
                    group.start_soon(stream, client)
                await started.wait()
                revoked_at = time.monotonic()
                assert (await revoker.delete(f"/connections/{user}")).status_code == 204
            refused = await first.post(
                "/chat/completions", json=SLOW | {"stream": False}, headers={"Wattfare-User": user}
            )
    finally:
        for client in (first, second, revoker):
            await client.aclose()

    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "not_connected"
    assert len(endings) == total
    latencies = [ended_at - revoked_at for _, ended_at in endings]
    for rest, _ in endings:
        assert rest[-1] == "[DONE]"
        assert decoded(rest[-2])["error"]["code"] == "not_connected"
        assert len(rest) < 20  # stopped early: most of the 50 slow tokens never came
    assert max(latencies) < REVOCATION_WITHIN, latencies

    books = AsyncLedger(deployment.database_url)
    with anyio.fail_after(10):
        while await books.open_holds(user):
            await anyio.sleep(0.1)
    account = (await books.assert_balanced(user))[0]
    entries = await books.entries(app_user_prefix=user)
    assert [entry.kind for entry in entries] == ["estimated"] * total
    assert 0 < account.spent == sum(entry.amount for entry in entries) <= account.cap
    record(
        "revocation",
        "Revocation across instances",
        [
            ("streams in flight", f"{total} (on 2 instances)"),
            ("revoked through", "a third instance (`DELETE /connections/{appUserId}`)"),
            ("streams ended with the `not_connected` SSE error", f"{total} of {total}"),
            ("time from revocation to the end of the slowest stream", f"{max(latencies):.2f} s"),
            ("bound asserted", f"{REVOCATION_WITHIN} s (the poll reads the store twice a second)"),
            ("settled", f"{total} `estimated` ledger rows, nothing held, spent <= cap"),
        ],
    )

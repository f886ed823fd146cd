"""The cap guarantee under a storm: hundreds of concurrent requests against a real server process.

A few app users with caps worth only a handful of requests each fire 60 requests apiece, all at once,
streamed and not, with and without `max_tokens`; one of them uses a model whose upstream reports its own
`usage.cost`. With one worker, SQLite's conditional writes race inside one event loop; with two workers, or
two servers taking turns, they race across processes on one file (the embedded store's way to scale out).
Either way no answer may be a 5xx, every settled spend stays under its cap, and the ledger, the counters and
what the clients were told agree.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import anyio
import httpx
import pytest

from tests.server.process.sse_wire import chunks, data_fields
from tests.support.ledger import Ledger
from tests.support.standin_upstream import COMPLETION_PRICE, PROMPT_PRICE
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.metering import prompt_token_bound, usd_to_nanos

pytestmark = [pytest.mark.xdist_group("storm"), pytest.mark.anyio]

REQUESTS_PER_USER = 60
TOKEN_USERS = 3
TOKEN_CAP_USD = "0.0005"  # ~11 answers of 20 tokens at the stand-in's prices
UPSTREAM_COST_USD = "0.000123"
COST_CAP_USD = "0.001"  # 8 answers at the upstream's reported cost
MESSAGES = [{"role": "user", "content": "storm"}]


@dataclass(frozen=True)
class Outcome:
    """What one client saw."""

    user: str
    status: int
    code: str | None = None
    charged: Decimal | None = None
    stream_error: str | None = None


@dataclass(frozen=True)
class Deployment:
    """One or more server processes over one SQLite file, and the first app's secret key (valid on all)."""

    servers: list[ServerProcess]

    @property
    def secret(self) -> str:
        return self.servers[0].secret

    @property
    def books(self) -> Ledger:
        return Ledger(self.servers[0].db_path)

    def client(self, index: int, limits: httpx.Limits) -> httpx.AsyncClient:
        server = self.servers[index % len(self.servers)]
        authorization = {"Authorization": f"Bearer {self.secret}"}
        return httpx.AsyncClient(base_url=server.api_url, headers=authorization, limits=limits, timeout=60)

    def logs(self) -> str:
        return "".join(server.log_text() for server in self.servers)


@pytest.fixture(scope="module", params=["one-worker", "two-workers", "two-servers"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]
) -> Iterator[Deployment]:
    # Shared by the tests of this module (each uses its own app users), so three deployments start, not nine.
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param == "two-servers":
        # Same tmp_path, so the same database file; each provisions an app, the first one's key is used.
        with wattfare_process(tmp_path, env=standin_env) as first, wattfare_process(tmp_path, env=standin_env) as other:
            yield Deployment([first, other])
        return
    workers = 2 if request.param == "two-workers" else 1
    with wattfare_process(tmp_path, env=standin_env, workers=workers) as running:
        yield Deployment([running])


async def fire(client: httpx.AsyncClient, user: str, model: str, *, stream: bool, max_tokens: int | None) -> Outcome:
    body: dict[str, object] = {"model": model, "messages": MESSAGES, "stream": stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    headers = {"Wattfare-User": user}
    if not stream:
        response = await client.post("/chat/completions", json=body, headers=headers)
        if response.status_code != 200:
            return Outcome(user, response.status_code, code=response.json()["error"]["code"])
        return Outcome(user, 200, charged=Decimal(response.headers["wattfare-cost-usd"]))
    async with client.stream("POST", "/chat/completions", json=body, headers=headers) as response:
        content = await response.aread()
    if response.status_code != 200:
        return Outcome(user, response.status_code, code=response.json()["error"]["code"])
    events = chunks(content)
    if data_fields(content)[-1] != "[DONE]":
        return Outcome(user, 200, stream_error="no [DONE]")
    if "error" in events[-1]:
        return Outcome(user, 200, stream_error=events[-1]["error"]["code"])
    return Outcome(user, 200, charged=events[-1]["wattfare"]["costUsd"])


async def test_storm_of_concurrent_requests_never_breaks_a_cap(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:8]
    token_users = [f"storm-{run}-{index}" for index in range(TOKEN_USERS)]
    cost_user = f"storm-{run}-cost"
    caps = dict.fromkeys(token_users, TOKEN_CAP_USD) | {cost_user: COST_CAP_USD}
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    outcomes: list[Outcome] = []

    async with deployment.client(0, limits) as first, deployment.client(1, limits) as second:
        for user, cap in caps.items():
            limit = {"appUserId": user, "requestLimit": {"monthlyUsd": float(cap)}}
            session = await first.post("/sessions", json=limit)
            assert session.status_code == 200, session.text

        async def one(user: str, index: int) -> None:
            model = f"standin/cost-{UPSTREAM_COST_USD}" if user == cost_user else "standin/ok"
            # Without max_tokens Wattfare holds its output allowance, as far as the spend affords; with it, a slice.
            max_tokens = None if index % 3 == 0 else (100 if user == cost_user else 20)
            # Two servers take turns (with one server both clients reach it).
            client = second if index % 4 >= 2 else first
            outcomes.append(await fire(client, user, model, stream=index % 2 == 0, max_tokens=max_tokens))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for index in range(REQUESTS_PER_USER):
                    for user in caps:
                        group.start_soon(one, user, index)

    assert len(outcomes) == REQUESTS_PER_USER * len(caps) >= 200
    unexpected = [o for o in outcomes if o.status not in (200, 402, 429)]
    assert unexpected == []
    # A spent cap is 402 `budget_exceeded`; holds of requests in flight are 429 `budget_busy` (retryable).
    assert {outcome.code for outcome in outcomes if outcome.status == 402} == {"budget_exceeded"}
    assert {outcome.code for outcome in outcomes if outcome.status == 429} <= {"budget_busy"}
    assert [outcome for outcome in outcomes if outcome.stream_error] == []

    books = deployment.books
    books.assert_balanced()
    told: dict[str, Decimal] = defaultdict(Decimal)
    for outcome in outcomes:
        if outcome.charged is not None:
            told[outcome.user] += outcome.charged
    for user, cap in caps.items():
        mine = [outcome for outcome in outcomes if outcome.user == user]
        answered = [outcome for outcome in mine if outcome.status == 200]
        account = books.account(user)
        assert account.cap == usd_to_nanos(cap)
        assert account.spent <= account.cap
        # What the clients were told they paid is exactly what the books say.
        assert usd_to_nanos(told[user]) == account.spent
        assert len(books.entries(user)) == len(answered) == account.ledger_entries
        assert {entry.kind for entry in books.entries(user)} == {"charge"}
        # Sensible: a handful answered, the rest refused, and most of the budget was really spent.
        assert 0 < len(answered) < len(mine)
        assert account.spent >= account.cap // 2
        # `budget_exceeded` only once this month's spend left no room for even a one-token answer (spend only
        # grows, so the final spend shows it); short of that, a refusal is `budget_busy`.
        if any(outcome.code == "budget_exceeded" for outcome in mine):
            model_price = usd_to_nanos(UPSTREAM_COST_USD) if user == cost_user else minimal_answer_nanos()
            assert account.cap - account.spent < model_price, (user, account)
    # The upstream's own cost is charged, except where it ran past the hold: the excess is absorbed, not billed.
    assert {entry.amount + entry.absorbed for entry in books.entries(cost_user)} == {usd_to_nanos(UPSTREAM_COST_USD)}
    assert "Traceback" not in deployment.logs()


def minimal_answer_nanos() -> int:
    """The worst case of a one-token answer to MESSAGES on standin/ok: what a budget must hold to admit one."""
    prompt = prompt_token_bound(MESSAGES) * usd_to_nanos(PROMPT_PRICE)
    return prompt + usd_to_nanos(COMPLETION_PRICE)


async def test_revocation_stops_every_stream_in_flight(deployment: Deployment) -> None:
    user, streams = f"storm-{uuid.uuid4().hex[:8]}-revoked", 40
    body = {"model": "standin/slow", "messages": MESSAGES, "stream": True}
    endings: list[tuple[str, float]] = []
    started = anyio.Event()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)

    # Streams go through the first server; the revocation through the last (with two servers, the other one).
    async with deployment.client(0, limits) as client, deployment.client(-1, limits) as revoker:
        running: list[int] = []
        revoked_at = float("inf")

        async def one() -> None:
            headers = {"Wattfare-User": user}
            async with client.stream("POST", "/chat/completions", json=body, headers=headers) as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith("data:"):
                        break
                running.append(1)
                if len(running) == streams:
                    started.set()
                events = [line async for line in lines if line.startswith("data:")]
            endings.append((events[-2], anyio.current_time()))
            assert events[-1] == "data: [DONE]"

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(streams):
                    group.start_soon(one)
                await started.wait()
                revoked_at = anyio.current_time()
                assert (await revoker.delete(f"/connections/{user}")).status_code == 204

    assert len(endings) == streams
    for last_event, ended_at in endings:
        assert '"code":"not_connected"' in last_event
        # Streams served by another worker or server learn of it from the twice-a-second poll.
        # Wattfare's bound is one second (a 0.5 s poll); the slack absorbs a loaded shared machine while staying
        # far below the 10 s these streams would otherwise run.
        assert ended_at - revoked_at < 3.0
    books = deployment.books
    books.assert_balanced()
    assert {entry.kind for entry in books.entries(user)} == {"estimated"}
    assert len(books.entries(user)) == streams


CHAOS_MODELS = (
    "standin/ok",
    f"standin/cost-{UPSTREAM_COST_USD}",
    "standin/slow",  # abandoned by its client after two events
    "standin/midstream-error",
    "standin/hangup",
    "standin/runaway",
    "standin/no-usage",
    "standin/http-500",
    "standin/malformed",
)


async def test_chaos_of_failing_and_abandoned_requests_never_breaks_a_cap(deployment: Deployment) -> None:
    user, cap = f"storm-{uuid.uuid4().hex[:8]}-chaos", "0.003"
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)

    async with deployment.client(0, limits) as first, deployment.client(1, limits) as second:
        limit = {"appUserId": user, "requestLimit": {"monthlyUsd": float(cap)}}
        assert (await first.post("/sessions", json=limit)).status_code == 200

        async def one(index: int) -> None:
            model = CHAOS_MODELS[index % len(CHAOS_MODELS)]
            # The slow model always streams: its whole answer would take 10 s.
            body = {"model": model, "messages": MESSAGES, "stream": index % 2 == 0 or model == "standin/slow"}
            client = second if index % 4 >= 2 else first
            async with client.stream(
                "POST", "/chat/completions", json=body, headers={"Wattfare-User": user}
            ) as response:
                statuses.append(response.status_code)
                if model == "standin/slow" and response.status_code == 200:
                    lines = response.aiter_lines()
                    seen = 0
                    async for line in lines:
                        seen += line.startswith("data:")
                        if seen == 2:
                            break  # leaving the block hangs up mid-stream
                    return
                await response.aread()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for index in range(len(CHAOS_MODELS) * 20):
                    group.start_soon(one, index)

    assert set(statuses) <= {200, 402, 429, 502}
    assert statuses.count(200) > 0
    assert statuses.count(402) > 0
    books = deployment.books
    # Abandoned streams settle as their servers notice the hang-up: give them a moment.
    with anyio.fail_after(5):
        while books.open_holds():
            await anyio.sleep(0.05)
    books.assert_balanced()
    account = books.account(user)
    assert 0 < account.spent <= account.cap == usd_to_nanos(cap)
    assert "Traceback" not in deployment.logs()

"""Charged exactly what was used, under every fault: the fault matrix, against real `wattfare serve` processes.

Every request here asks a premium-priced model (the stand-in's `standin/premium`: $3/M prompt, $15/M
completion, 64k tokens of output) without `max_tokens`, and the servers hold the model's whole output for
such requests (an output allowance of 64k), so each one holds almost a dollar: a hold that
leaked, expiring at its full amount, would cost its user most of a $1 cap. The client hangs up at each
instant a request can be cut (after the headers, after the first event, mid-stream, as the final usage
chunk is settled, while a whole answer is awaited, and, on PostgreSQL, inside the settle's own database
write), on SQLite and PostgreSQL, with one worker and two. After each case the ledger checker
(`tests/support/ledger.py`) reads the books: nothing held, no `expired` row, counters equal to the ledger,
and every request charged at most what its relayed tokens plus its prompt bound can cost.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
import pytest

from tests.support import postgres
from tests.support.ledger import Ledger
from tests.support.standin_upstream import (
    NORMAL_TOKENS,
    PREMIUM_COMPLETION_PRICE,
    PREMIUM_MAX_OUTPUT,
    PREMIUM_PROMPT_PRICE,
    StandIn,
)
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.metering import prompt_token_bound, usd_to_nanos

pytestmark = pytest.mark.xdist_group("fault_matrix")

MODEL = "standin/premium"
MESSAGES = [{"role": "user", "content": "hello"}]
# Everything the stand-in's answer can carry: the most a cut request can have relayed.
ANSWER_BYTES = len("".join(f"word{index} " for index in range(NORMAL_TOKENS)).encode())
# What a request can cost at most once cut, at any instant: its prompt bound and its whole answer.
CUT_REQUEST_BOUND = prompt_token_bound(MESSAGES) * usd_to_nanos(PREMIUM_PROMPT_PRICE) + ANSWER_BYTES * usd_to_nanos(
    PREMIUM_COMPLETION_PRICE
)
CONCURRENT = 4
# Every request holds the model's whole maximum output (not the 4,096-token default allowance), so that a
# leaked hold would cost its user almost all of a $1 cap, as in the issue that found the leak.
WHOLE_OUTPUT_HOLDS = {"WATTFARE_OUTPUT_ALLOWANCE_TOKENS": str(PREMIUM_MAX_OUTPUT)}


@dataclass(frozen=True)
class Deployment:
    server: ServerProcess
    ledger: Ledger


def _deploy(tmp: Path, env: dict[str, str], workers: int, database_url: str | None) -> Iterator[Deployment]:
    env = env | WHOLE_OUTPUT_HOLDS
    with wattfare_process(tmp, env=env, workers=workers, database_url=database_url, test_cap_usd="1") as server:
        yield Deployment(server, Ledger(database_url or server.db_path))


@pytest.fixture(
    scope="module",
    params=[
        ("sqlite", 1),
        ("sqlite", 2),
        pytest.param(("postgresql", 1), marks=pytest.mark.postgres),
        pytest.param(("postgresql", 2), marks=pytest.mark.postgres),
    ],
    ids=lambda param: f"{param[0]}-{param[1]}w",
)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]
) -> Iterator[Deployment]:
    store, workers = request.param
    tmp = tmp_path_factory.mktemp(f"matrix-{store}-{workers}")
    if store == "sqlite":
        yield from _deploy(tmp, standin_env, workers, None)
        return
    with postgres.fresh_database() as url:
        yield from _deploy(tmp, standin_env, workers, url)


def new_user() -> str:
    return f"cut-{uuid.uuid4().hex[:12]}"


def request_bytes(server: ServerProcess, user: str, *, stream: bool) -> bytes:
    body = orjson.dumps({"model": MODEL, "messages": MESSAGES, "stream": stream})
    netloc = urlsplit(server.base_url).netloc
    head = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: {netloc}\r\nAuthorization: Bearer {server.secret}\r\n"
        f"Wattfare-User: {user}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def hang_up(server: ServerProcess, user: str, *, stream: bool, until: Callable[[bytes, float], bool]) -> bytes:
    """Send one completion on a raw connection and drop it as soon as `until(received, seconds)` holds."""
    address = urlsplit(server.base_url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request_bytes(server, user, stream=stream))
        connection.settimeout(0.05)
        received = b""
        while not until(received, time.monotonic() - started):
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            received += chunk
    return received


def events(received: bytes) -> int:
    return received.count(b'"delta"')


# Where the client hangs up: (streamed, the moment to drop the connection).
CUTS: dict[str, tuple[bool, Callable[[bytes, float], bool]]] = {
    "after-the-headers": (True, lambda received, _: b"\r\n\r\n" in received),
    "after-the-first-event": (True, lambda received, _: events(received) >= 1),
    "mid-stream": (True, lambda received, _: events(received) >= NORMAL_TOKENS // 2),
    # The finish chunk comes just before the usage chunk: the hang-up lands while the usage is settled.
    "as-the-usage-chunk-is-settled": (True, lambda received, _: b'"finish_reason":"stop"' in received),
    # Only once the model has the request (a request dropped before that is never admitted, rightly free).
    "while-a-whole-answer-is-awaited": (False, lambda _, seconds: seconds > 0.3),
}


def once_upstream_has(standin: StandIn, count: int, after: float) -> Callable[[bytes, float], bool]:
    """A hang-up point: `after` seconds in, once the stand-in has received `count` requests for MODEL in all."""

    def reached(received: bytes, seconds: float) -> bool:
        return seconds > after and int(standin.stats()["requests"].get(MODEL, 0)) >= count

    return reached


@pytest.mark.parametrize("cut", list(CUTS))
def test_a_client_hanging_up_is_charged_what_was_used_never_the_hold(
    deployment: Deployment, cut: str, standin: StandIn
) -> None:
    stream, until = CUTS[cut]
    if not stream:
        until = once_upstream_has(standin, int(standin.stats()["requests"].get(MODEL, 0)) + CONCURRENT, 0.3)
    users = [new_user() for _ in range(CONCURRENT)]

    with ThreadPoolExecutor(CONCURRENT) as pool:
        received = list(pool.map(lambda user: hang_up(deployment.server, user, stream=stream, until=until), users))

    refused = [answer[:600] for answer in received if answer and not answer.startswith(b"HTTP/1.1 200")]
    assert not refused, refused
    rows = deployment.ledger.check(bounds=dict.fromkeys(users, CUT_REQUEST_BOUND))
    assert {rows_of_user.kind for rows_of_user in rows.values() if rows_of_user.app_user_id in users} <= {
        "charge",
        "estimated",
    }


def test_forty_hung_up_streams_on_a_one_dollar_cap_cost_cents(deployment: Deployment) -> None:
    """The issue's case: each stream holds ~$0.96; were one to leak, the next could not even start."""
    user = new_user()
    with httpx.Client(base_url=deployment.server.api_url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {deployment.server.secret}", "Wattfare-User": user}
        for index in range(40):
            until = CUTS["after-the-first-event" if index % 2 else "mid-stream"][1]
            answer = hang_up(deployment.server, user, stream=True, until=until)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
            deployment.ledger.wait_until_nothing_is_held()
        status = client.get("/status", params={"appUserId": user}, headers=headers).json()

    rows = [row for row in deployment.ledger.check().values() if row.app_user_id == user]
    assert len(rows) == 40
    spent = sum(row.amount for row in rows)
    assert spent <= 40 * CUT_REQUEST_BOUND < usd_to_nanos("0.10")
    assert status["spentUsd"] == pytest.approx(spent / 1e9)
    assert status["limits"]["monthlyUsd"] == 1


# -- inside the settle's own database write (PostgreSQL: the write awaits the network, so a cancellation can
# land in it; SQLite's write runs synchronously on the event loop, where no cancellation can interrupt it)


SLOW_LEDGER = """
CREATE FUNCTION slow_ledger_insert() RETURNS trigger AS $$
BEGIN PERFORM pg_sleep(0.4); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER slow_ledger BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION slow_ledger_insert();
"""


async def _execute(url: str, sql: str) -> None:
    db = await asyncpg.connect(url, timeout=10)
    try:
        await db.execute(sql)
    finally:
        await db.close()


@pytest.mark.postgres
@pytest.mark.parametrize("workers", [1, 2])
def test_a_hang_up_during_the_settles_own_write_still_settles_once(
    tmp_path: Path, standin_env: dict[str, str], standin: StandIn, workers: int
) -> None:
    with (
        postgres.fresh_database() as url,
        wattfare_process(
            tmp_path, env=standin_env | WHOLE_OUTPUT_HOLDS, workers=workers, database_url=url, test_cap_usd="1"
        ) as server,
    ):
        asyncio.run(_execute(url, SLOW_LEDGER))  # every settle now spends 0.4 s inside its transaction
        ledger = Ledger(url)
        users = [new_user() for _ in range(CONCURRENT)]
        cut = CUTS["as-the-usage-chunk-is-settled"][1]

        with ThreadPoolExecutor(CONCURRENT) as pool:
            streamed = list(pool.map(lambda user: hang_up(server, user, stream=True, until=cut), users))
        # And whole answers, dropped while their settle is being written.
        whole = [new_user() for _ in range(CONCURRENT)]
        # The answer takes 1 s upstream, then its settle 0.4 s in the ledger: 1.2 s in lands inside the write.
        dropped = once_upstream_has(standin, int(standin.stats()["requests"].get(MODEL, 0)) + CONCURRENT, 1.2)
        with ThreadPoolExecutor(CONCURRENT) as pool:
            list(pool.map(lambda user: hang_up(server, user, stream=False, until=dropped), whole))

        assert all(answer.startswith(b"HTTP/1.1 200") for answer in streamed), [a[:400] for a in streamed]

        rows = ledger.check(bounds=dict.fromkeys(users + whole, CUT_REQUEST_BOUND))
        assert sum(1 for row in rows.values() if row.app_user_id in users + whole) == 2 * CONCURRENT
        assert "unhandled" not in server.log_text()


# -- hostile bodies: refused before any hold, on both stores


def deep(levels: int) -> str:
    """JSON text nesting objects `levels` deep (written out: no encoder would produce it)."""
    return '{"a":' * levels + '"x"' + "}" * levels


def with_model(fields: str) -> bytes:
    return ('{"model":"' + MODEL + '",' + fields + "}").encode()


MESSAGES_JSON = orjson.dumps(MESSAGES).decode()
DEEP: dict[str, bytes] = {
    "messages nested 300 deep": with_model('"messages":[{"role":"user","content":[' + deep(300) + "]}]"),
    "tools nested 1000 deep": with_model(f'"messages":{MESSAGES_JSON},"tools":[{deep(1000)}]'),
    "response_format nested 300 deep": with_model(f'"messages":{MESSAGES_JSON},"response_format":{deep(300)}'),
    "a message field nested 100 deep": with_model(
        '"messages":[{"role":"user","content":"hi","extra":' + deep(100) + "}]"
    ),
}
HOSTILE: dict[str, dict[str, Any]] = {
    "messages as an object": {"messages": {"role": "user"}},
    "a message as a string": {"messages": ["hello"]},
    "max_tokens as a string": {"messages": MESSAGES, "max_tokens": "100"},
    "max_tokens negative": {"messages": MESSAGES, "max_tokens": -1},
    "n as a float": {"messages": MESSAGES, "n": 1.5},
    "stream as a string": {"messages": MESSAGES, "stream": "yes"},
    "tools as an object": {"messages": MESSAGES, "tools": {"type": "function"}},
    "stream_options as a list": {"messages": MESSAGES, "stream_options": [True]},
    "user as a number": {"messages": MESSAGES, "user": 7},
    "an api key in the body": {"messages": MESSAGES, "openai_api_key": "sk-leftover"},
    "an access token in the body": {"messages": MESSAGES, "access_token": "secret"},
}


def test_hostile_bodies_get_a_4xx_and_take_no_hold(deployment: Deployment) -> None:
    user = new_user()
    headers = {"Authorization": f"Bearer {deployment.server.secret}", "Wattfare-User": user}
    with httpx.Client(base_url=deployment.server.api_url, timeout=30) as client:
        first = client.post("/chat/completions", json={"model": MODEL, "messages": MESSAGES}, headers=headers)
        assert first.status_code == 200
        before = client.get("/status", params={"appUserId": user}, headers=headers).json()["remainingUsd"]
        bodies = DEEP | {name: orjson.dumps({"model": MODEL} | body) for name, body in HOSTILE.items()}
        for name, raw in bodies.items():
            answer = client.post("/chat/completions", content=raw, headers=headers)
            assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == "invalid_request", name
        after = client.get("/status", params={"appUserId": user}, headers=headers).json()["remainingUsd"]

    assert after == before
    rows = [row for row in deployment.ledger.check().values() if row.app_user_id == user]
    assert len(rows) == 1  # only the first, well-formed request ever reached the books
    assert "unhandled" not in deployment.server.log_text()


# -- PostgreSQL refusing connections, between requests and mid-stream


async def _admin(sql: str) -> None:
    await _execute(postgres.admin_url(), sql)


def refuse_connections(database: str) -> None:
    """What an operator's `ALLOW_CONNECTIONS false` plus terminated sessions does to every instance."""
    asyncio.run(_admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
    asyncio.run(
        _admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
            "AND pid <> pg_backend_pid()"
        )
    )


def allow_connections(database: str) -> None:
    asyncio.run(_admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))


@pytest.mark.postgres
def test_postgresql_refusing_connections_is_a_503_and_a_stream_it_cuts_is_charged_what_it_relayed(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    env = standin_env | WHOLE_OUTPUT_HOLDS | {"WATTFARE_HOLD_TTL_SECONDS": "5"}
    with (
        postgres.fresh_database() as url,
        wattfare_process(tmp_path, env=env, database_url=url, test_cap_usd="1") as server,
    ):
        database = urlsplit(url).path.lstrip("/")
        user = new_user()
        headers = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": user}
        body = {"model": MODEL, "messages": MESSAGES}
        with httpx.Client(base_url=server.api_url, headers=headers, timeout=30) as client:
            assert client.post("/chat/completions", json=body).status_code == 200
            with client.stream("POST", "/chat/completions", json=body | {"stream": True}) as cut:
                assert cut.status_code == 200
                cut_id = cut.headers["wattfare-request-id"]
                lines = cut.iter_lines()
                assert next(line for line in lines if line.startswith("data:"))
                refuse_connections(database)
                try:
                    # The stream's settle falls in the outage: it ends with `unavailable`, not a provider error.
                    rest = [line for line in lines if line.startswith("data:")]
                    assert rest[-1] == "data: [DONE]"
                    assert orjson.loads(rest[-2].removeprefix("data: "))["error"]["code"] == "unavailable"
                    # Between requests: every call that needs the books is a 503 `unavailable` with Retry-After.
                    for answer in (
                        client.post("/chat/completions", json=body),
                        client.post("/chat/completions", json=body | {"stream": True}),
                        client.get("/status", params={"appUserId": user}),
                    ):
                        assert answer.status_code == 503, answer.text
                        assert answer.json()["error"]["code"] == "unavailable"
                        assert answer.headers["retry-after"] == "1"
                finally:
                    allow_connections(database)
            # Back without a restart: the pool reconnects by itself.
            deadline = time.monotonic() + 30
            while (answer := client.post("/chat/completions", json=body)).status_code != 200:
                assert answer.status_code == 503, answer.text
                assert time.monotonic() < deadline
                time.sleep(0.2)

        rows = Ledger(url).check(bounds={cut_id: CUT_REQUEST_BOUND})
        # The cut stream's usage came before the outage ended it: that is what it is charged, once written.
        assert rows[cut_id].kind == "charge"
        assert "unhandled" not in server.log_text()

"""`POST /embeddings` through a real `wattfare serve` process, on SQLite and PostgreSQL, in front of the stand-in.

The stand-in lists its embedding models apart (`/v1/embeddings/models`, a prompt price only, as OpenRouter does)
at $1 per million input tokens, so a token is exactly 1,000 nano-USD and every cost below is exact. A storm of
concurrent batches against small caps never settles above a cap; refusals are typed; what the clients were told,
the ledger, the counters and the usage report agree; what the provider received is what the client sent (but for
the end user's id); a client that hangs up is charged what the provider reported, or the input bound, never more
than its hold; every way the provider can fail has its envelope and its charge.
"""

from __future__ import annotations

import base64
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import orjson
import pytest

from tests.support import postgres
from tests.support.ledger import Ledger
from tests.support.standin_upstream import EMBEDDING_PRICE, StandIn
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.metering import embedding_token_bound, usd_to_nanos

pytestmark = pytest.mark.xdist_group("embeddings")

MODEL = "standin/embed"
TOKEN = usd_to_nanos(EMBEDDING_PRICE)  # 1,000 nano-USD
UPSTREAM_TIMEOUT_SECONDS = 1


@dataclass(frozen=True)
class Deployment:
    server: ServerProcess
    ledger: Ledger

    def client(self, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.server.secret}"}
        return httpx.Client(base_url=self.server.api_url, headers=headers, timeout=30, **options)


def wait_for_model(server: ServerProcess, model: str) -> None:
    """Wait until the server has read the stand-in's price lists (its first refresh runs as it starts)."""
    deadline = time.monotonic() + 15
    headers = {"Authorization": f"Bearer {server.secret}"}
    while model not in {entry["id"] for entry in httpx.get(f"{server.api_url}/models", headers=headers).json()["data"]}:
        assert time.monotonic() < deadline, f"{model} was never priced"
        time.sleep(0.1)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"embeddings-{request.param}")
    env = standin_env | {"WATTFARE_UPSTREAM_TIMEOUT_SECONDS": str(UPSTREAM_TIMEOUT_SECONDS)}
    if request.param == "sqlite":
        with wattfare_process(tmp, env=env) as server:
            wait_for_model(server, MODEL)
            yield Deployment(server, Ledger(server.db_path))
        return
    with postgres.fresh_database() as url, wattfare_process(tmp, env=env, database_url=url) as server:
        wait_for_model(server, MODEL)
        yield Deployment(server, Ledger(url))


def new_user(kind: str = "emb") -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def embed(client: httpx.Client, app_user: str, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "input": "hello"} | body
    return client.post("/embeddings", json=payload, headers={"Wattfare-User": app_user})


def suggest_cap(client: httpx.Client, user: str, usd: str) -> None:
    response = client.post("/sessions", json={"appUserId": user, "requestLimit": {"monthlyUsd": float(usd)}})
    assert response.status_code == 200, response.text


def received(standin: StandIn, model: str = MODEL) -> int:
    return int(standin.stats()["requests"].get(model, 0))


# -- the cap, under a storm


STORM_USERS = 3
STORM_REQUESTS = 40
STORM_CAP_USD = "0.0003"  # 300,000 nanos: each batch holds 88,000 and is charged 20,000
STORM_INPUT = ["storm " + "x" * 34, "storm " + "y" * 34]  # two inputs of 40 bytes
STORM_HOLD = embedding_token_bound(STORM_INPUT) * TOKEN
STORM_CHARGE = 2 * 10 * TOKEN  # the stand-in counts a quarter of the bytes


@pytest.mark.anyio
async def test_a_storm_of_concurrent_embeddings_never_settles_above_a_small_cap(deployment: Deployment) -> None:
    users = [new_user("storm") for _ in range(STORM_USERS)]
    outcomes: list[tuple[str, int, str | None, Decimal | None]] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {deployment.server.secret}"}

    async with httpx.AsyncClient(
        base_url=deployment.server.api_url, headers=headers, limits=limits, timeout=60
    ) as client:
        for user in users:
            limit = {"appUserId": user, "requestLimit": {"monthlyUsd": float(STORM_CAP_USD)}}
            assert (await client.post("/sessions", json=limit)).status_code == 200

        async def one(user: str) -> None:
            body: dict[str, Any] = {"model": MODEL, "input": STORM_INPUT}
            response = await client.post("/embeddings", json=body, headers={"Wattfare-User": user})
            if response.status_code == 200:
                assert len(response.json()["data"]) == 2
                outcomes.append((user, 200, None, Decimal(response.headers["wattfare-cost-usd"])))
            else:
                outcomes.append((user, response.status_code, response.json()["error"]["code"], None))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(STORM_REQUESTS):
                    for user in users:
                        group.start_soon(one, user)

    assert len(outcomes) == STORM_USERS * STORM_REQUESTS
    statuses = Counter((status, code) for _, status, code, _ in outcomes)
    assert set(statuses) <= {(200, None), (402, "budget_exceeded"), (429, "budget_busy")}, statuses
    assert statuses[(402, "budget_exceeded")] > 0
    books = await anyio.to_thread.run_sync(deployment.ledger.check)
    for user in users:
        mine = [outcome for outcome in outcomes if outcome[0] == user]
        answered = [outcome for outcome in mine if outcome[1] == 200]
        account = deployment.ledger.account(user)
        assert account.spent <= account.cap == usd_to_nanos(STORM_CAP_USD)
        # What the clients were told they paid is exactly what the books say, request by request.
        assert sum(usd_to_nanos(outcome[3]) for outcome in answered if outcome[3] is not None) == account.spent
        rows = [row for row in books.values() if row.app_user_id == user]
        assert {(row.endpoint, row.kind, row.amount) for row in rows} == {("embeddings", "charge", STORM_CHARGE)}
        assert len(rows) == len(answered) == account.ledger_entries
        assert 0 < len(answered) < len(mine)
        # Exceeded only once the spend left no room for one more batch's bound; most of the cap was spent.
        if any(outcome[2] == "budget_exceeded" for outcome in mine):
            assert account.cap - account.spent < STORM_HOLD
        assert account.spent >= account.cap // 2
    assert "Traceback" not in deployment.server.log_text()


def test_an_unconnected_live_user_is_not_connected_and_the_provider_never_hears_of_it(
    deployment: Deployment, standin: StandIn
) -> None:
    before = received(standin)
    with deployment.client() as client:
        live = {"Authorization": f"Bearer {deployment.server.app.secret_keys['live']}", "Wattfare-User": new_user()}
        response = client.post("/embeddings", json={"model": MODEL, "input": "hello"}, headers=live)

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "not_connected"
    assert response.headers["x-should-retry"] == "false"
    assert received(standin) == before


def test_a_spent_cap_is_budget_exceeded_with_its_reset(deployment: Deployment) -> None:
    user = new_user()
    with deployment.client() as client:
        # 20,000 nanos: each request holds its bound (9 tokens, 9,000) and is charged 2 tokens (2,000), so six fit.
        suggest_cap(client, user, "0.00002")
        codes = [embed(client, user, input="hello").status_code for _ in range(6)]
        refused = embed(client, user, input="hello")

    assert codes == [200] * 6
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("budget_exceeded", "insufficient_quota")
    assert error["resetsAt"].endswith("T00:00:00Z")
    account = deployment.ledger.account(user)
    assert account.cap - account.spent < embedding_token_bound(["hello"]) * TOKEN


# -- what is charged, and reported


def test_batches_and_token_arrays_cost_their_reported_tokens_and_the_usage_report_says_embeddings(
    deployment: Deployment,
) -> None:
    user = new_user()
    requests = [["one", "two two", "three three three"], [[1, 2, 3, 4, 5], [6, 7]], [9, 9, 9], "a single text"]
    told = Decimal(0)
    tokens = 0
    with deployment.client() as client:
        for inputs in requests:
            response = embed(client, user, input=inputs)
            assert response.status_code == 200, response.text
            body = response.json()
            reported = body["usage"]["prompt_tokens"]
            assert Decimal(response.headers["wattfare-cost-usd"]) == reported * Decimal(EMBEDDING_PRICE)
            assert body["wattfare"]["requestId"] == response.headers["wattfare-request-id"]
            told += Decimal(response.headers["wattfare-cost-usd"])
            tokens += reported
        [row] = client.get("/usage", params={"appUserId": user}).json()["data"]

    # 1 + 2 + 5 tokens, 5 + 2, 3, and 4: a quarter of each text's bytes (at least 1), a token array's length.
    assert tokens == 8 + 7 + 3 + 4
    assert row == {
        "appUserId": user,
        "model": MODEL,
        "endpoint": "embeddings",
        "requests": 4,
        "promptTokens": tokens,
        "completionTokens": 0,
        "costUsd": float(told),
    }
    assert told == tokens * Decimal(EMBEDDING_PRICE)
    assert {row.endpoint for row in deployment.ledger.entries(user)} == {"embeddings"}


def test_dimensions_and_encoding_format_reach_the_provider_and_the_end_user_does_not(
    deployment: Deployment, standin: StandIn
) -> None:
    user = new_user()
    with deployment.client() as client:
        response = embed(client, user, input=["alpha", "beta"], dimensions=5, encoding_format="base64", user=user)

    assert response.status_code == 200, response.text
    sent = standin.stats()["last_request"]
    assert sent["model"] == MODEL
    assert sent["input"] == ["alpha", "beta"]
    assert (sent["dimensions"], sent["encoding_format"]) == (5, "base64")
    assert sent["user"].startswith("wf_")
    assert user not in standin.stats()["last_raw"]
    for item in response.json()["data"]:
        assert len(struct.unpack("<5f", base64.b64decode(item["embedding"]))) == 5


def test_refused_requests_never_reach_the_provider_nor_the_books(deployment: Deployment, standin: StandIn) -> None:
    user = new_user()
    bodies: list[tuple[str, bytes]] = [
        ("/embeddings", b"{"),
        ("/embeddings", orjson.dumps({"model": MODEL})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": ""})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": ["ok", ""]})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": [1, -2]})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": [[1], "mixed"]})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": ["a"] * 2049})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": "x", "dimensions": 0})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": "x", "encoding_format": "binary"})),
        ("/embeddings", orjson.dumps({"model": MODEL, "input": "x", "api_key": "sk-leftover"})),
        ("/embeddings", b'{"model": "standin/embed", "input": ' + b"[" * 100 + b"]" * 100 + b"}"),
        ("/embeddings", orjson.dumps({"model": "standin/ok", "input": "a chat model"})),
        ("/embeddings", orjson.dumps({"model": "standin/embedd", "input": "unknown"})),
        ("/chat/completions", orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})),
    ]
    before = (received(standin), received(standin, "standin/ok"), deployment.ledger.totals())
    with deployment.client() as client:
        for path, content in bodies:
            response = client.post(path, content=content, headers={"Wattfare-User": user})
            assert 400 <= response.status_code < 500, (content[:80], response.text)
            assert response.json()["error"]["code"] in ("invalid_request", "model_not_found"), response.text

    assert (received(standin), received(standin, "standin/ok"), deployment.ledger.totals()) == before
    assert "unhandled" not in deployment.server.log_text()


# -- a client that hangs up while the provider embeds


def hang_up_once_received(deployment: Deployment, standin: StandIn, user: str, model: str, inputs: object) -> None:
    """Send one embedding request on a raw connection; drop it once the provider has it, before its answer."""
    address = urlsplit(deployment.server.base_url)
    body = orjson.dumps({"model": model, "input": inputs})
    head = (
        f"POST /api/v1/embeddings HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: Bearer {deployment.server.secret}\r\nWattfare-User: {user}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    before = received(standin, model)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        deadline = time.monotonic() + 10
        while received(standin, model) == before:
            assert time.monotonic() < deadline, "the request never reached the provider"
            time.sleep(0.02)
    # The connection is closed here, while the stand-in still sleeps on its answer.


@pytest.mark.parametrize(
    ("model", "kind"),
    [("standin/embed-slow", "charge"), ("standin/embed-slow-no-usage", "estimated")],
)
def test_a_client_hanging_up_is_charged_what_the_provider_reported_or_the_bound_never_the_hold_more(
    deployment: Deployment, standin: StandIn, model: str, kind: str
) -> None:
    user = new_user("cut")
    inputs = ["a text of thirty-two bytes, okay", "and another one"]
    hold = embedding_token_bound(inputs) * TOKEN

    hang_up_once_received(deployment, standin, user, model, inputs)

    rows = deployment.ledger.check(bounds={user: hold}, settle_within=15)
    [row] = [row for row in rows.values() if row.app_user_id == user]
    assert (row.endpoint, row.kind) == ("embeddings", kind)
    # What the provider reported (8 + 4 tokens), or, with no usage to read, the input bound: the hold itself.
    assert row.amount == (12 * TOKEN if kind == "charge" else hold)


# -- the provider's failures


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("standin/embed-http-500", 502, "upstream"),
        ("standin/embed-http-502", 502, "upstream"),
        ("standin/embed-http-401", 502, "upstream"),
        ("standin/embed-http-402", 502, "upstream"),
        ("standin/embed-http-429", 429, "rate_limited"),
        ("standin/embed-timeout", 504, "upstream"),
        ("standin/embed-malformed", 502, "upstream"),
        ("standin/embed-hangup", 502, "upstream"),
    ],
)
def test_a_provider_that_fails_before_answering_costs_nothing(
    deployment: Deployment, model: str, status: int, code: str
) -> None:
    user = new_user("fault")
    with deployment.client() as client:
        response = embed(client, user, model=model, input="nothing comes of this")

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["wattfare-request-id"].startswith("req_")
    if status == 429:
        assert response.headers["retry-after"] == "7"
    [entry] = deployment.ledger.entries(user)
    assert (entry.endpoint, entry.kind, entry.amount) == ("embeddings", "released", 0)
    assert deployment.ledger.account(user).spent == 0


@pytest.mark.parametrize(
    "model", ["standin/embed-no-usage", "standin/embed-negative-usage", "standin/embed-undercount"]
)
def test_missing_or_impossible_usage_is_charged_the_input_bound(deployment: Deployment, model: str) -> None:
    user = new_user("bound")
    inputs = ["twelve bytes", "and twenty more bytes"]
    with deployment.client() as client:
        response = embed(client, user, model=model, input=inputs)

    assert response.status_code == 200, response.text
    bound = embedding_token_bound(inputs) * TOKEN
    assert usd_to_nanos(response.headers["wattfare-cost-usd"]) == bound
    [entry] = deployment.ledger.entries(user)
    assert (entry.kind, entry.amount, entry.prompt_tokens) == ("estimated", bound, embedding_token_bound(inputs))


def test_the_providers_reported_cost_is_charged_within_the_hold(deployment: Deployment) -> None:
    user = new_user("cost")
    with deployment.client() as client:
        within = embed(client, user, model="standin/embed-cost-0.000123", input="x" * 200)  # holds 204,000
        beyond = embed(client, user, model="standin/embed-cost-0.000123", input="x" * 20)  # holds 24,000

    assert usd_to_nanos(within.headers["wattfare-cost-usd"]) == 123_000
    assert usd_to_nanos(beyond.headers["wattfare-cost-usd"]) == 24_000  # never more than the hold
    entries = deployment.ledger.entries(user)
    assert [(entry.amount, entry.absorbed) for entry in entries] == [(123_000, 0), (24_000, 99_000)]


def test_a_provider_error_after_it_embedded_is_an_error_charged_what_it_reported(deployment: Deployment) -> None:
    user = new_user("late")
    with deployment.client() as client:
        response = embed(client, user, model="standin/embed-error-body", input="sixteen bytes!!!")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream"
    assert usd_to_nanos(response.headers["wattfare-cost-usd"]) == 4 * TOKEN
    [entry] = deployment.ledger.entries(user)
    assert (entry.kind, entry.amount) == ("charge", 4 * TOKEN)

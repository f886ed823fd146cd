"""A real Wattfare process in front of a misbehaving provider: each fault has its envelope, and costs what it should.

The provider is the stand-in process; every request names a fresh app user, so each test reads that user's
books (counters and ledger in the SQLite file) to see exactly what was charged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.server.process.sse_wire import chunks, content_chunks, data_fields, decoded
from tests.support.ledger import Ledger
from tests.support.standin_upstream import COMPLETION_PRICE, PROMPT_PRICE, StandIn
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.metering import usd_to_nanos

pytestmark = pytest.mark.xdist_group("upstream_faults")

UPSTREAM_TIMEOUT_SECONDS = 1
MESSAGES = [{"role": "user", "content": "Say something."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]) -> Iterator[ServerProcess]:
    env = standin_env | {"WATTFARE_UPSTREAM_TIMEOUT_SECONDS": str(UPSTREAM_TIMEOUT_SECONDS)}
    with wattfare_process(tmp_path_factory.mktemp("faults"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {server.secret}"}, timeout=30
    ) as http:
        yield http


@pytest.fixture
def books(server: ServerProcess) -> Ledger:
    return Ledger(server.db_path)


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def complete(client: httpx.Client, user: str, model: str, *, stream: bool = False, **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": MESSAGES, "stream": stream, **body}
    return client.post("/chat/completions", json=payload, headers={"Wattfare-User": user})


def suggest_cap(client: httpx.Client, user: str, usd: str) -> None:
    response = client.post("/sessions", json={"appUserId": user, "requestLimit": {"monthlyUsd": float(usd)}})
    assert response.status_code == 200, response.text


def assert_nothing_charged(books: Ledger, user: str) -> None:
    account = books.account(user)
    assert (account.spent, account.reserved) == (0, 0)
    entries = books.entries(user)
    assert entries, "the request should have been reserved and released"
    assert {(entry.kind, entry.amount) for entry in entries} == {("released", 0)}
    assert books.open_holds() == 0


def requests_for(standin: StandIn, model: str) -> int:
    return int(standin.stats()["requests"].get(model, 0))


def true_cost_nanos(prompt_tokens: int, completion_tokens: int) -> int:
    """What the stand-in's own usage would cost at its listed prices."""
    return prompt_tokens * usd_to_nanos(PROMPT_PRICE) + completion_tokens * usd_to_nanos(COMPLETION_PRICE)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("status", [500, 502])
def test_provider_failure_is_a_502_upstream_error_and_costs_nothing(
    client: httpx.Client, books: Ledger, standin: StandIn, status: int, stream: bool
) -> None:
    user, model = new_user(), f"standin/http-{status}"
    asked_before = requests_for(standin, model)

    response = complete(client, user, model, stream=stream)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream"
    assert response.json()["error"]["type"] == "api_error"
    assert requests_for(standin, model) == asked_before + 1
    assert_nothing_charged(books, user)


def test_provider_rate_limit_is_a_429_that_passes_on_retry_after(client: httpx.Client, books: Ledger) -> None:
    user = new_user()

    response = complete(client, user, "standin/http-429")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert response.headers["retry-after"] == "7"
    assert_nothing_charged(books, user)


@pytest.mark.parametrize("status", [401, 402])
def test_provider_refusing_the_operators_key_is_a_502_not_the_users_problem(
    client: httpx.Client, books: Ledger, status: int
) -> None:
    user = new_user()

    response = complete(client, user, f"standin/http-{status}")

    # A 401 would tell the app its own key is bad, a 402 that its user is out of money: neither is true.
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream"
    assert "x-should-retry" not in response.headers
    assert_nothing_charged(books, user)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_provider_timeout_is_a_504_within_a_bounded_time(client: httpx.Client, books: Ledger, stream: bool) -> None:
    user = new_user()
    started = time.monotonic()

    response = complete(client, user, "standin/timeout", stream=stream)

    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream"
    # The stand-in answers after 5 s; the 1 s timeout must cut it well before.
    assert UPSTREAM_TIMEOUT_SECONDS <= elapsed < 4
    assert_nothing_charged(books, user)


def test_malformed_provider_answer_is_a_502(client: httpx.Client, books: Ledger) -> None:
    user = new_user()

    response = complete(client, user, "standin/malformed")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream"
    assert_nothing_charged(books, user)


def test_malformed_provider_stream_ends_with_an_upstream_sse_error(client: httpx.Client, books: Ledger) -> None:
    user = new_user()

    response = complete(client, user, "standin/malformed", stream=True)

    assert response.status_code == 200
    fields = data_fields(response.content)
    assert fields[-1] == "[DONE]"
    assert decoded(fields[-2])["error"]["code"] == "upstream"
    books.assert_balanced()


def test_midstream_error_ends_the_stream_with_an_upstream_error_and_charges_an_estimate(
    client: httpx.Client, books: Ledger
) -> None:
    user, max_tokens = new_user(), 1000

    response = complete(client, user, "standin/midstream-error", stream=True, max_tokens=max_tokens)

    assert response.status_code == 200
    fields = data_fields(response.content)
    assert fields[-1] == "[DONE]"
    error = decoded(fields[-2])["error"]
    assert error["code"] == "upstream"
    assert "stand-in failed mid-stream" in error["message"]
    # The provider's own error chunk is replaced by Wattfare's envelope, not relayed as well.
    assert sum("error" in chunk for chunk in chunks(response.content)) == 1
    assert content_chunks(response.content) == 3
    (entry,) = books.entries(user)
    assert entry.request_id == response.headers["wattfare-request-id"]
    assert entry.kind == "estimated"
    # At least what the three tokens really cost (an upper bound of usage), far below the hold, which
    # covers max_tokens completion tokens at the least.
    assert true_cost_nanos(2, 3) <= entry.amount < max_tokens * usd_to_nanos(COMPLETION_PRICE)
    books.assert_balanced()


def test_error_in_a_whole_answer_is_a_502_that_charges_what_the_provider_processed(
    client: httpx.Client, books: Ledger
) -> None:
    """OpenRouter answers 200 with an `error` once processing started: that work is billed, so it is charged."""
    user = new_user()

    response = complete(client, user, "standin/midstream-error")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream"
    (entry,) = books.entries(user)
    assert entry.kind == "estimated"
    assert Decimal(response.headers["wattfare-cost-usd"]) * 10**9 == entry.amount
    # At least what the three tokens it wrote cost; at most the bound of the prompt and what the answer held.
    assert true_cost_nanos(2, 3) <= entry.amount < 1000 * usd_to_nanos(COMPLETION_PRICE)
    books.assert_balanced()


def test_negative_usage_from_the_provider_is_never_a_discount(client: httpx.Client, books: Ledger) -> None:
    user = new_user()

    for stream in (False, True):
        response = complete(client, user, "standin/negative-usage", stream=stream)
        assert response.status_code == 200

    entries = books.entries(user)
    assert [entry.kind for entry in entries] == ["estimated", "estimated"]
    # Twenty tokens were written: each answer is charged at least what they cost, whatever the usage claimed.
    assert all(entry.amount >= true_cost_nanos(2, 20) for entry in entries)
    books.assert_balanced()


def test_hangup_midstream_ends_the_stream_with_an_upstream_error(client: httpx.Client, books: Ledger) -> None:
    user = new_user()

    response = complete(client, user, "standin/hangup", stream=True, max_tokens=1000)

    assert response.status_code == 200
    fields = data_fields(response.content)
    assert fields[-1] == "[DONE]"
    assert decoded(fields[-2])["error"]["code"] == "upstream"
    assert content_chunks(response.content) == 3
    (entry,) = books.entries(user)
    assert entry.kind == "estimated"
    assert 0 < entry.amount < 1000 * usd_to_nanos(COMPLETION_PRICE)
    books.assert_balanced()


def test_hangup_of_a_whole_answer_is_a_502(client: httpx.Client, books: Ledger) -> None:
    user = new_user()

    response = complete(client, user, "standin/hangup")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream"
    books.assert_balanced()


def test_runaway_stream_is_cut_with_budget_exceeded_before_it_passes_the_cap(
    client: httpx.Client, books: Ledger, standin: StandIn
) -> None:
    user = new_user()
    suggest_cap(client, user, "0.0003")

    response = complete(client, user, "standin/runaway", stream=True)

    assert response.status_code == 200
    sent_max_tokens = standin.stats()["last_request"]["max_tokens"]
    assert 0 < sent_max_tokens < 150  # what $0.0003 affords at $0.000002 a token, less the prompt
    fields = data_fields(response.content)
    assert fields[-1] == "[DONE]"
    assert decoded(fields[-2])["error"]["code"] == "budget_exceeded"
    # The upstream sent 500 tokens; the client got no more than the ceiling Wattfare set.
    assert content_chunks(response.content) <= sent_max_tokens
    account = books.account(user)
    assert account.cap == usd_to_nanos("0.0003")
    assert 0 < account.spent <= account.cap
    books.assert_balanced()

    refused = complete(client, user, "standin/ok", stream=True)
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "budget_exceeded"


def test_runaway_whole_answer_is_charged_no_more_than_its_hold(client: httpx.Client, books: Ledger) -> None:
    user = new_user()
    suggest_cap(client, user, "0.0003")

    response = complete(client, user, "standin/runaway")

    assert response.status_code == 200
    (entry,) = books.entries(user)
    # 500 tokens reported cost $0.001: more than the cap, so the excess is absorbed, never charged.
    assert entry.amount <= usd_to_nanos("0.0003")
    assert entry.absorbed > 0
    assert Decimal(response.headers["wattfare-cost-usd"]) * 10**9 == entry.amount
    books.assert_balanced()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_upstream_without_usage_is_charged_conservatively_within_the_cap(
    client: httpx.Client, books: Ledger, stream: bool
) -> None:
    user = new_user()
    suggest_cap(client, user, "0.01")

    response = complete(client, user, "standin/no-usage", stream=stream)

    assert response.status_code == 200
    if stream:
        assert data_fields(response.content)[-1] == "[DONE]"
        assert content_chunks(response.content) == 20
    (entry,) = books.entries(user)
    # Never less than the 20 tokens the stand-in produced (and its 2-token prompt) really cost.
    assert true_cost_nanos(2, 20) <= entry.amount <= usd_to_nanos("0.01")
    # An upper bound of what the answer used, not the whole hold (here all the user could still afford).
    assert entry.kind == "estimated"
    assert entry.amount < usd_to_nanos("0.01") // 10
    books.assert_balanced()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_upstream_reported_cost_is_what_gets_charged(client: httpx.Client, books: Ledger, stream: bool) -> None:
    user = new_user()

    response = complete(client, user, "standin/cost-0.000123", stream=stream)

    assert response.status_code == 200
    if stream:
        usage_chunk = chunks(response.content)[-1]
        assert usage_chunk["usage"]["cost"] == Decimal("0.000123")
        charged = usage_chunk["wattfare"]["costUsd"]
    else:
        charged = Decimal(response.headers["wattfare-cost-usd"])
    assert charged == Decimal("0.000123")
    (entry,) = books.entries(user)
    assert entry.amount == usd_to_nanos("0.000123")
    assert entry.amount != true_cost_nanos(2, 20)  # not what the token counts would have cost
    books.assert_balanced()


def test_the_server_logged_no_unhandled_error(server: ServerProcess, client: httpx.Client) -> None:
    complete(client, new_user(), "standin/ok", stream=True)

    log = server.log_text()
    assert "Traceback" not in log
    assert "ASGI callable returned without completing response" not in log

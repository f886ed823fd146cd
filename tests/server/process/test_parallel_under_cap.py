"""Parallel requests under one cap: no hold trap, no silent truncation (real `wattfare serve` processes).

The issue's case: a $5 cap, a model at Claude Sonnet's prices ($3/M prompt, $15/M completion, 64k tokens of
output), 32 parallel requests without `max_tokens`, each answered with 200 tokens over two seconds so they
overlap. Under the old rule each held the model's whole maximum output (about $0.96): five fitted, and the rest
were refused or cut to the crumbs left. Under the output allowance all 32 run at once and finish in full.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.server.process.sse_wire import chunks
from tests.support.ledger import Ledger
from tests.support.standin_upstream import PREMIUM_MAX_OUTPUT, SONNET_TOKENS
from tests.support.wattfare_server import ServerProcess, wattfare_process
from wattfare.metering import usd_to_nanos

pytestmark = pytest.mark.xdist_group("parallel_under_cap")

MODEL = "standin/sonnet"
MESSAGES = [{"role": "user", "content": "Write me a paragraph."}]
PARALLEL = 32
CAP_USD = "5"


def one(server: ServerProcess, user: str, *, stream: bool, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": MESSAGES, "stream": stream, **body}
    headers = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": user}
    return httpx.post(f"{server.api_url}/chat/completions", json=payload, headers=headers, timeout=60)


def burst(server: ServerProcess, user: str) -> list[httpx.Response]:
    """PARALLEL requests of one user at once, half streamed, none with max_tokens."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda index: one(server, user, stream=index % 2 == 0), range(PARALLEL)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]) -> Iterator[ServerProcess]:
    with wattfare_process(tmp_path_factory.mktemp("parallel"), env=standin_env, test_cap_usd=CAP_USD) as running:
        yield running


def test_thirty_two_parallel_requests_without_max_tokens_all_finish_in_full_under_a_five_dollar_cap(
    server: ServerProcess,
) -> None:
    user = f"parallel-{uuid.uuid4().hex[:8]}"

    answers = burst(server, user)

    assert [answer.status_code for answer in answers] == [200] * PARALLEL
    for answer in answers:
        assert answer.headers["wattfare-clamped"] == "false"
        assert answer.headers["wattfare-max-tokens"] == "4096"  # the server's default allowance
        if answer.headers["content-type"].startswith("text/event-stream"):
            events = chunks(answer.content)
            finish = [c["choices"][0]["finish_reason"] for c in events if c.get("choices")][-1]
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c.get("choices"))
            assert events[-1]["wattfare"]["clamped"] is False
        else:
            body = answer.json()
            finish = body["choices"][0]["finish_reason"]
            text = body["choices"][0]["message"]["content"]
            assert body["wattfare"] == {
                "requestId": answer.headers["wattfare-request-id"],
                "costUsd": float(answer.headers["wattfare-cost-usd"]),
                "remainingUsd": float(answer.headers["wattfare-remaining-usd"]),
                "maxTokens": 4096,
                "clamped": False,
            }
        assert finish == "stop"  # none was cut
        assert len(text.split()) == SONNET_TOKENS
    rows = Ledger(server.db_path).check()
    spent = sum(row.amount for row in rows.values() if row.app_user_id == user)
    assert 0 < spent <= usd_to_nanos(CAP_USD)


def test_the_models_maximum_as_the_hold_lets_only_five_start_and_the_rest_are_busy_not_exceeded(
    tmp_path_factory: pytest.TempPathFactory, standin_env: dict[str, str]
) -> None:
    """The old rule (hold the model's maximum output), measured: and what its refusals now say."""
    env = standin_env | {"WATTFARE_OUTPUT_ALLOWANCE_TOKENS": str(PREMIUM_MAX_OUTPUT), "WATTFARE_BUSY_WAIT_SECONDS": "0"}
    tmp = tmp_path_factory.mktemp("model-maximum")
    with wattfare_process(tmp, env=env, test_cap_usd=CAP_USD) as old_rule:
        user = f"maximum-{uuid.uuid4().hex[:8]}"

        answers = burst(old_rule, user)

        outcomes = Counter(
            answer.status_code if answer.status_code == 200 else answer.json()["error"]["code"] for answer in answers
        )
        # $5 holds five holds of 64,000 tokens at $15/M ($0.96 and the prompt each), not six.
        assert outcomes == {200: 5, "budget_busy": PARALLEL - 5}
        for answer in answers:
            if answer.status_code == 429:
                assert answer.headers["retry-after"] == "1"
                assert answer.json()["error"]["type"] == "rate_limit_error"
        Ledger(old_rule.db_path).check()


def test_an_answer_the_spend_cut_says_so_everywhere(server: ServerProcess) -> None:
    user = f"clamped-{uuid.uuid4().hex[:8]}"
    # A three-cent cap: the 4,096-token allowance ($0.061 at $15/M) does not fit; about 2,000 tokens do.
    session = httpx.post(
        f"{server.api_url}/sessions",
        json={"appUserId": user, "requestLimit": {"monthlyUsd": 0.03}},
        headers={"Authorization": f"Bearer {server.secret}"},
    )
    assert session.status_code == 200

    whole = one(server, user, stream=False)
    streamed = one(server, user, stream=True)

    for answer in (whole, streamed):
        assert answer.status_code == 200, answer.text
        assert answer.headers["wattfare-clamped"] == "true"
        assert 0 < int(answer.headers["wattfare-max-tokens"]) < 4096
    assert whole.json()["wattfare"]["clamped"] is True
    assert chunks(streamed.content)[-1]["wattfare"]["clamped"] is True
    assert chunks(streamed.content)[-1]["wattfare"]["maxTokens"] == int(streamed.headers["wattfare-max-tokens"])


def test_a_client_that_asks_for_more_than_the_allowance_gets_it(server: ServerProcess) -> None:
    user = f"asks-{uuid.uuid4().hex[:8]}"

    answer = one(server, user, stream=False, max_tokens=10_000)

    assert answer.status_code == 200
    assert answer.headers["wattfare-max-tokens"] == "10000"
    assert answer.headers["wattfare-clamped"] == "false"


def test_the_connection_status_shows_what_requests_in_flight_hold(server: ServerProcess) -> None:
    user = f"reserved-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {server.secret}"}
    payload = {"model": MODEL, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{server.api_url}/chat/completions", json=payload, headers=headers | {"Wattfare-User": user}
    ) as running:
        assert running.status_code == 200
        lines = running.iter_lines()
        next(lines)
        during = httpx.get(f"{server.api_url}/status", params={"appUserId": user}, headers=headers).json()
        assert [line for line in lines if line][-1] == "data: [DONE]"
    after = httpx.get(f"{server.api_url}/status", params={"appUserId": user}, headers=headers).json()

    assert during["reservedUsd"] > 0
    assert during["remainingUsd"] == pytest.approx(5 - during["spentUsd"] - during["reservedUsd"])
    assert after["reservedUsd"] == 0
    assert after["spentUsd"] > 0

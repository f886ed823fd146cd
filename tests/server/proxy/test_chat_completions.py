"""The proxy in-process: metering, caps, test-mode auto-approval, the error envelope."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.wattfare_server import in_process

pytestmark = pytest.mark.anyio

HELLO = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


async def test_a_completion_is_charged_to_the_end_user_and_reported(tmp_path: Path, database_url: str) -> None:
    async with in_process(tmp_path, database_url) as wf:
        response = await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(user="alice"))
        assert response.status_code == 200, response.text
        cost = Decimal(response.headers["Wattfare-Cost-Usd"])
        assert cost > 0
        assert Decimal(response.headers["Wattfare-Remaining-Usd"]) == Decimal(10) - cost
        status = (await wf.client.get("/status", params={"appUserId": "alice"}, headers=wf.auth())).json()
        assert status["connected"] is True
        assert Decimal(str(status["spentUsd"])) == cost


async def test_a_spent_cap_refuses_with_budget_exceeded_and_no_retry(tmp_path: Path, database_url: str) -> None:
    async with in_process(tmp_path, database_url) as wf:
        session = await wf.client.post(
            "/sessions", json={"appUserId": "bob", "requestLimit": {"monthlyUsd": 0.0001}}, headers=wf.auth()
        )
        assert session.status_code == 200
        statuses = []
        for _ in range(30):
            r = await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(user="bob"))
            statuses.append(r.status_code)
            if r.status_code == 402:
                assert r.json()["error"]["code"] == "budget_exceeded"
                assert r.json()["error"]["resetsAt"].endswith("T00:00:00Z")
                assert r.headers["x-should-retry"] == "false"
                break
        assert statuses[-1] == 402
        status = (await wf.client.get("/status", params={"appUserId": "bob"}, headers=wf.auth())).json()
        assert Decimal(str(status["spentUsd"])) <= Decimal("0.0001")


async def test_every_refusal_names_its_request_and_a_served_request_reuses_that_id_in_the_ledger(
    tmp_path: Path,
) -> None:
    async with in_process(tmp_path) as wf:
        unknown = await wf.client.post(
            "/chat/completions", json={**HELLO, "model": "nope/nothing"}, headers=wf.auth(user="carol")
        )
        assert unknown.status_code == 404
        assert unknown.headers["Wattfare-Request-Id"].startswith("req_")
        served = await wf.client.post("/chat/completions", json=HELLO, headers=wf.auth(user="carol"))
        request_id = served.headers["Wattfare-Request-Id"]
        assert request_id != unknown.headers["Wattfare-Request-Id"]
        db = sqlite3.connect(tmp_path / "wattfare.db")
        try:
            assert db.execute("SELECT COUNT(*) FROM ledger WHERE request_id = ?", (request_id,)).fetchone() == (1,)
        finally:
            db.close()

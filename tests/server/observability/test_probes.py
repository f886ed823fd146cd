"""`/healthz`, `/readyz` and `/metrics`: what a load balancer and Prometheus read, and who may read it."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from tests.support.wattfare_server import InProcess, in_process, served, wattfare_process
from wattfare.server.api.openapi import openapi_document
from wattfare.server.app import create_app
from wattfare.server.settings import Settings

TOKEN = "scrape-token-for-the-tests"
DOCUMENT = openapi_document()
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests_ok(text: str, endpoint: str = "POST /api/v1/chat/completions") -> float:
    return samples(text).get(
        ("wattfare_requests_total", (("code", "ok"), ("endpoint", endpoint), ("mode", "test"))), 0.0
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def root(wf: InProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=wf.client._transport, base_url="http://wattfare.test")


@pytest.mark.anyio
async def test_metrics_do_not_exist_without_a_token(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf, root(wf) as client:
        answer = await client.get("/metrics", headers={"Authorization": "Bearer anything"})

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "invalid_request"


@pytest.mark.anyio
@pytest.mark.usefixtures("each_store")
async def test_metrics_answer_only_the_token_and_count_what_happened(tmp_path: Path) -> None:
    async with in_process(tmp_path, metrics_token=TOKEN) as wf, root(wf) as client:
        for wrong in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Basic {TOKEN}"}):
            refused = await client.get("/metrics", headers=wrong)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
        before = samples((await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text)
        answer = await wf.client.post("/chat/completions", json=CHAT, headers=wf.auth(user="metrics-user"))
        assert answer.status_code == 200
        cost = round(float(answer.headers["wattfare-cost-usd"]) * 1e9)
        unknown = await wf.client.post("/chat/completions", json=CHAT | {"model": "no/such"}, headers=wf.auth())
        assert unknown.status_code == 404
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    after = samples(scraped.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    endpoint = "POST /api/v1/chat/completions"
    assert grew("wattfare_requests_total", endpoint=endpoint, mode="test", code="ok") == 1
    assert grew("wattfare_requests_total", endpoint=endpoint, mode="test", code="model_not_found") == 1
    assert grew("wattfare_spent_nano_usd_total", mode="test") == cost
    assert grew("wattfare_settlements_total", kind="settled") == 1
    assert grew("wattfare_upstream_ttfb_seconds_count", mode="test", endpoint="chat.completions") == 1
    # The reserve and the settle, each timed: grouped writes on SQLite; on PostgreSQL lone statements (`write`),
    # but for a window's first reserve, which the grouped transaction decides.
    hot_writes = sum(grew("wattfare_store_duration_seconds_count", operation=op) for op in ("grouped_write", "write"))
    assert hot_writes >= 2
    assert after[("wattfare_store_reachable", ())] == 1
    assert after[("wattfare_holds_open", ())] == 0
    assert after[("wattfare_hold_oldest_age_seconds", ())] == 0
    assert after[("wattfare_price_list_models", (("mode", "test"),))] > 10
    assert after[("wattfare_price_list_age_seconds", (("mode", "test"),))] >= 0
    assert not any("metrics-user" in str(key) for key in after)


@pytest.mark.anyio
@pytest.mark.usefixtures("each_store")
async def test_ready_when_the_store_answers_and_the_prices_are_fresh(tmp_path: Path) -> None:
    async with in_process(tmp_path) as wf, root(wf) as client:
        ready = await client.get("/readyz")

    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["store"]) == ("ready", "ok")
    assert body["prices"]["test"]["ok"] is True
    assert body["prices"]["test"]["models"] > 10


@pytest.mark.anyio
async def test_not_ready_when_the_store_is_unreachable_though_alive(tmp_path: Path) -> None:
    url = f"postgresql://wattfare@127.0.0.1:{closed_port()}/nothing"
    app = create_app(Settings.from_env({}, database_url=url, metrics_token=TOKEN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wattfare.test") as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert ready.status_code == 503
    documented = DOCUMENT["components"]["responses"]["E503"]["content"]["application/json"]["schema"]
    Draft202012Validator({**documented, "components": DOCUMENT["components"]}).validate(ready.json())
    error = ready.json()["error"]
    assert error["code"] == "unavailable"
    assert "store" in error["message"]
    assert error["checks"]["store"] == "unavailable"
    assert ready.headers["retry-after"]
    assert alive.status_code == 200
    assert samples(scraped.text)[("wattfare_store_reachable", ())] == 0


@pytest.mark.anyio
async def test_not_ready_when_the_prices_were_not_refreshed_for_three_periods(tmp_path: Path) -> None:
    now = [datetime(2026, 12, 5, 12, tzinfo=UTC)]
    async with (
        served(f"sqlite:///{tmp_path / 'w.db'}", clock=lambda: now[0]) as server,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=server.asgi), base_url="http://wattfare.test") as client,
    ):
        assert (await client.get("/readyz")).status_code == 200
        now[0] += timedelta(seconds=3 * server.settings.price_refresh_seconds + 1)
        stale = await client.get("/readyz")

    assert stale.status_code == 503
    error = stale.json()["error"]
    assert "price list" in error["message"]
    assert error["checks"]["store"] == "ok"
    assert error["checks"]["prices"]["test"]["ok"] is False


@pytest.mark.xdist_group("workers_metrics")
def test_two_workers_scrape_as_one_and_leave_no_metrics_files_behind(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"WATTFARE_METRICS_TOKEN": TOKEN, "TMPDIR": str(scratch)}
    with wattfare_process(tmp_path, env=env, workers=2) as server, httpx.Client(timeout=30) as client:
        headers = {"Authorization": f"Bearer {server.secret}", "Wattfare-User": "two-workers"}
        for _ in range(12):
            # A new connection each time, so both workers serve some.
            answer = client.post(
                f"{server.api_url}/chat/completions", json=CHAT, headers=headers | {"Connection": "close"}
            )
            assert answer.status_code == 200
        counts = set()
        for _ in range(6):
            scraped = client.get(
                f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
            )
            counts.add(requests_ok(scraped.text))
        assert list(scratch.iterdir()), "the workers shared no metrics directory"
    assert counts == {12.0}, "every worker's scrape counts every worker's requests"
    assert list(scratch.iterdir()) == [], "serve left its metrics directory behind"

"""Streamed completions on the wire: complete HTTP bodies, the final usage chunk, typed error events."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.wattfare_server import ServerProcess, in_process, wattfare_process

MODEL = "openai/gpt-4o-mini"
STREAM = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "stream": True}


def events_until_done(response: httpx.Response) -> list[str]:
    """The `data:` payloads up to and including `[DONE]`, without reading past it."""
    events: list[str] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(line.removeprefix("data: "))
            if events[-1] == "[DONE]":
                break
    return events


def headers(server: ServerProcess, user: str = "streamer") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.secret}", "Wattfare-User": user}


def test_a_stream_ends_with_usage_and_its_wattfare_cost_then_done(tmp_path: Path) -> None:
    with (
        wattfare_process(tmp_path) as server,
        httpx.Client(base_url=server.api_url, timeout=30) as client,
        client.stream("POST", "/chat/completions", json=STREAM, headers=headers(server)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["Wattfare-Request-Id"]
        assert Decimal(response.headers["Wattfare-Remaining-Usd"]) == Decimal(10)
        events = events_until_done(response)
        status = client.get("/status", params={"appUserId": "streamer"}, headers=headers(server)).json()
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["usage"]["completion_tokens"] > 0
    assert final["wattfare"]["requestId"] == response.headers["Wattfare-Request-Id"]
    cost = Decimal(str(final["wattfare"]["costUsd"]))
    assert cost > 0
    assert Decimal(str(final["wattfare"]["remainingUsd"])) == Decimal(10) - cost
    assert Decimal(str(status["spentUsd"])) == cost


def test_a_stream_is_a_complete_http_body(tmp_path: Path) -> None:
    with (
        wattfare_process(tmp_path) as server,
        httpx.Client(base_url=server.api_url, timeout=30) as client,
    ):
        response = client.post("/chat/completions", json=STREAM, headers=headers(server))
        assert response.status_code == 200
        assert response.text.endswith("data: [DONE]\n\n")
    assert "returned without completing response" not in server.log_text()


def test_a_stream_broken_upstream_ends_with_a_typed_error_event_then_done(tmp_path: Path) -> None:
    body = STREAM | {"messages": [{"role": "user", "content": "hello [sandbox:midstream_error]"}]}
    with (
        wattfare_process(tmp_path) as server,
        httpx.Client(base_url=server.api_url, timeout=30) as client,
        client.stream("POST", "/chat/completions", json=body, headers=headers(server)) as response,
    ):
        events = events_until_done(response)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "upstream"
    assert error["type"] == "api_error"


@pytest.mark.anyio
async def test_a_stream_completes_through_an_asgi_transport(tmp_path: Path) -> None:
    # httpx's ASGI transport asserts that the app completed its response (a cancelled hang-up watcher once
    # passed for a client that had left, and the response was never finished).
    async with in_process(tmp_path) as wf:
        response = await wf.client.post("/chat/completions", json=STREAM, headers=wf.auth())
        assert response.text.endswith("data: [DONE]\n\n")

"""The relay in-process: what reaches the client, and when, relative to the ledger write.

A fast upstream can deliver a whole stream (tokens, usage chunk, `[DONE]`) in one read. The tokens
must still reach the client before the settle's database write, or time-to-first-token pays for the
ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from wattfare.server.billing.hold import HeldRequest
from wattfare.server.billing.meter import Meter
from wattfare.server.billing.pricebook import load_snapshot, price_models
from wattfare.server.billing.revocations import Revocations
from wattfare.server.proxy.relay import MeteredStream
from wattfare.server.server_send import keep_server_send
from wattfare.server.store import Store, open_store
from wattfare.server.store.records import KeyRecord, Settled, Settlement
from wattfare.server.upstream.base import UpstreamResponse

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MODEL = "openai/gpt-4o-mini"


class SlowLedger:
    """A store whose settle waits until the test lets it through, recording what was sent by then."""

    def __init__(self, store: Store, sent: list[bytes]) -> None:
        self._store = store
        self._sent = sent
        self.sent_when_settling: list[bytes] | None = None
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def settle(self, settlement: Settlement, now: datetime) -> Settled | None:
        self.sent_when_settling = list(self._sent)
        await self.release.wait()
        return await self._store.settle(settlement, now)


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def one_read_stream() -> bytes:
    """Three token chunks, the usage chunk and `[DONE]`, as one upstream read."""
    tokens = [sse({"id": "c", "choices": [{"index": 0, "delta": {"content": word}}]}) for word in ("Hi", " there", "!")]
    usage = sse({"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
    return b"".join(tokens) + usage + b"data: [DONE]\n\n"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    await store.upgrade()
    await store.create_app("app_a", "A", 10**12, NOW)
    try:
        yield store
    finally:
        await store.close()


async def hold_for(meter: Meter) -> HeldRequest:
    key = KeyRecord(key_id="key_a", app_id="app_a", app_name="A", mode="test", default_test_cap=10**12)
    model = price_models(load_snapshot())[MODEL]
    held = await meter.reserve(key, "u1", model, prompt_token_bound=50, requested_max_tokens=20)
    assert isinstance(held, HeldRequest)
    return held


async def test_a_one_read_stream_writes_its_first_token_at_once_and_all_before_the_settle(store: Store) -> None:
    sent: list[bytes] = []
    ledger = SlowLedger(store, sent)
    meter = Meter(ledger, lambda: NOW, hold_ttl=timedelta(minutes=15))  # type: ignore[arg-type]
    held = await hold_for(meter)
    hold = held.hold

    async def chunks() -> AsyncIterator[bytes]:
        yield one_read_stream()

    response = MeteredStream(
        UpstreamResponse(200, chunks=chunks()), held, Revocations(store), {"Wattfare-Request-Id": hold.id}, 1
    )

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])

    async def receive() -> MutableMapping[str, Any]:
        await asyncio.Event().wait()  # the client never hangs up
        raise AssertionError

    serving = asyncio.ensure_future(response({"type": "http"}, receive, send))
    while ledger.sent_when_settling is None:
        await asyncio.sleep(0)
    ledger.release.set()
    await asyncio.wait_for(serving, 5)

    assert ledger.sent_when_settling is not None
    before_settle = b"".join(ledger.sent_when_settling)
    assert before_settle.count(b'"delta"') == 3  # every token was written before the settle began
    assert ledger.sent_when_settling[0].count(b'"delta"') == 1  # the first token went out on its own, at once
    assert b"usage" not in before_settle
    whole = b"".join(sent)
    assert whole.endswith(b"data: [DONE]\n\n")
    assert b'"wattfare":{"requestId"' in whole  # the usage chunk carries the settled cost, after the write
    assert await store.ledger_total(hold.connection.id, hold.window.key) > 0


async def test_events_go_to_the_servers_send_and_the_start_and_end_through_the_wrappers(store: Store) -> None:
    meter = Meter(store, lambda: NOW, hold_ttl=timedelta(minutes=15))
    held = await hold_for(meter)

    async def chunks() -> AsyncIterator[bytes]:
        yield sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})
        yield one_read_stream()

    response = MeteredStream(
        UpstreamResponse(200, chunks=chunks()), held, Revocations(store), {"Wattfare-Request-Id": held.hold.id}, 1
    )
    wrapped: list[MutableMapping[str, Any]] = []
    server: list[MutableMapping[str, Any]] = []

    async def wrapped_send(message: MutableMapping[str, Any]) -> None:
        wrapped.append(message)

    async def servers_send(message: MutableMapping[str, Any]) -> None:
        server.append(message)

    async def receive() -> MutableMapping[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError

    scope: dict[str, Any] = {"type": "http"}
    keep_server_send(scope, servers_send)
    await asyncio.wait_for(response(scope, receive, wrapped_send), 5)

    assert [m["type"] for m in wrapped] == ["http.response.start", "http.response.body"]
    assert (wrapped[-1]["body"], wrapped[-1]["more_body"]) == (b"", False)  # the wrappers see the end
    assert server
    assert all(m["type"] == "http.response.body" and m["more_body"] for m in server)
    whole = b"".join(m["body"] for m in server)
    assert whole.count(b'"delta"') == 4
    assert whole.endswith(b"data: [DONE]\n\n")


class _Counted:
    """What `_Tally` writes into: a hold's `output_bytes`."""

    output_bytes = 0


def test_the_tally_counts_every_byte_a_model_wrote_in_utf8_and_nothing_else() -> None:
    from wattfare.server.proxy.relay import _Tally  # pyright: ignore[reportPrivateUsage]

    held = _Counted()
    tally = _Tally(held)  # type: ignore[arg-type]
    chunks: list[Any] = [
        {"choices": [{"delta": {"content": "héllo", "reasoning": "ab", "refusal": None}}]},  # 6 + 2
        {"choices": [{"delta": {"tool_calls": [{"function": {"name": "f", "arguments": '{"x":1}'}}]}}]},  # 1 + 7
        {"choices": [{"delta": {"content": "x"}}, {"delta": {"content": "日本"}}]},  # 1 + 6, one chunk
        {"choices": [{"delta": {"role": "assistant"}}]},  # nothing written
        {"choices": "not a list"},
        {"choices": [None, 3, {"delta": "no"}, {"delta": {"content": 5, "tool_calls": [None, {"function": 1}]}}]},
        {},
    ]
    for chunk in chunks:
        tally.count(chunk)
    assert held.output_bytes == 6 + 2 + 1 + 7 + 1 + 6
    assert tally.content_chunks == 3

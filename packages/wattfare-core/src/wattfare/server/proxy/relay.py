"""Relaying an upstream stream to the client while metering it.

Events go out as they arrive, byte for byte; only the final usage chunk is rewritten once, to carry
Wattfare's cost. Four things can end a stream early, and the request's `HeldRequest` still settles it
exactly once: the client hangs up (charged for what was used), the connection is revoked (stopped within
a second, with a typed SSE error), the upstream fails (typed SSE error), or Wattfare's database becomes
unavailable (`unavailable` SSE error; the charge is written once it is back). An upstream that ignores
`max_tokens` is cut off with `budget_exceeded` before it can spend past the hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any, cast

import orjson

from wattfare.metering import nanos_to_json_number, nanos_to_usd
from wattfare.server.billing.hold import HeldRequest, Hold
from wattfare.server.billing.revocations import Revocations
from wattfare.server.errors import ApiError, unavailable
from wattfare.server.observability import metrics
from wattfare.server.proxy.sse_frames import SSEFrames, event_data
from wattfare.server.server_send import server_send
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.records import Settled
from wattfare.server.upstream.base import UpstreamResponse
from wattfare.server.upstream.errors import from_stream_error
from wattfare.server.upstream.usage import metered_usage

log = logging.getLogger("wattfare.relay")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DONE = b"data: [DONE]\n\n"


class _Tally:
    """What has streamed so far, counted into the request's hold: enough to settle it however it ends."""

    __slots__ = ("content_chunks", "held")

    def __init__(self, held: HeldRequest) -> None:
        self.held = held
        self.content_chunks = 0

    def count(self, chunk: dict[str, Any]) -> None:
        # Runs once per streamed event, so it walks the chunk inline; `type(x) is T` is exact for what
        # orjson builds, and anything of another shape counts nothing, as an absent field does.
        choices = chunk.get("choices")
        if type(choices) is not list:
            return
        produced = 0
        for choice in cast("list[object]", choices):
            if type(choice) is not dict:
                continue
            delta = cast("dict[str, object]", choice).get("delta")
            if type(delta) is not dict:
                continue
            fields = cast("dict[str, object]", delta)
            for name in _TEXT_FIELDS:
                text = fields.get(name)
                if type(text) is str:
                    produced += _utf8_length(text)
            calls = fields.get("tool_calls")
            if type(calls) is list:
                for call in cast("list[object]", calls):
                    function = cast("dict[str, object]", call).get("function") if type(call) is dict else None
                    if type(function) is dict:
                        for name in _CALL_FIELDS:
                            text = cast("dict[str, object]", function).get(name)
                            if type(text) is str:
                                produced += _utf8_length(text)
        if produced:
            self.held.output_bytes += produced
            self.content_chunks += 1


# What a model writes in a streamed delta (each counted in UTF-8 bytes: no token is shorter than a byte).
_TEXT_FIELDS = ("content", "reasoning", "refusal")
_CALL_FIELDS = ("name", "arguments")


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _content_only(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries neither an error nor usage: the usual event, relayed as it came once counted."""
    return chunk.get("error") is None and chunk.get("usage") is None


def _json_object(data: bytes) -> dict[str, Any] | None:
    """An event's data as a JSON object, or None when it is not one."""
    try:
        parsed: object = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return cast("dict[str, Any]", parsed) if type(parsed) is dict else None


def _wake(waiter: asyncio.Future[None], _: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


class MeteredStream:
    """An ASGI response that relays an upstream SSE stream, counting what it relays into the request's hold.

    The hold itself belongs to the `HeldRequest` the exchange entered around this response: the relay
    settles it when the usage chunk or `[DONE]` arrives, and whatever else ends the stream (the client
    leaving, a revocation, an upstream failure, an exception), the exchange's exit settles what was relayed.
    """

    def __init__(
        self,
        upstream: UpstreamResponse,
        held: HeldRequest,
        revocations: Revocations,
        headers: dict[str, str],
        choices: int,
        on_ceiling: Callable[[Hold], Awaitable[None]] | None = None,
    ) -> None:
        """Relay `upstream` under `held`; `on_ceiling` hears of a member's provider ceiling cutting the stream."""
        self._upstream = upstream
        self._held = held
        self._hold = held.hold
        self._revocations = revocations
        self._on_ceiling = on_ceiling
        self._headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        # Every non-empty chunk carries at least one token, so more chunks than this means the upstream
        # is past max_tokens for some choice.
        self._chunk_ceiling = None if self._hold.max_tokens is None else self._hold.max_tokens * choices
        self._tally = _Tally(held)
        # Whether the relay has asked its hold for a settlement (the `HeldRequest` says when one committed).
        self._settle_requested = False
        # Events read but not yet written, and where to write them (set when the pump starts).
        self._batch: list[bytes] = []
        self._send: Send | None = None
        self._wrote_body = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream."""
        revoked = self._revocations.watch(self._hold.connection.id)
        tasks: tuple[asyncio.Future[Any], ...] = ()
        # Read before the tasks are cancelled below: a cancelled task is `done()` too, and taking that for
        # the client's hang-up would drop the ending event and the end of the response.
        client_left = True
        ending: ApiError | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            # The events themselves skip the wrappers of `send`, which only look at the start (and see the end).
            pump = asyncio.ensure_future(self._pump(server_send(scope, send)))
            hangup = asyncio.ensure_future(self._wait_for_disconnect(receive))
            tasks = (pump, hangup)
            # The first of the three to end wakes this coroutine: `asyncio.wait` would do the same with a
            # coroutine, a set and a callback per future of its own, kept for as long as the stream is open.
            first_end = asyncio.get_running_loop().create_future()
            wake = partial(_wake, first_end)
            for ends in (*tasks, revoked):
                ends.add_done_callback(wake)
            await first_end
            client_left = hangup.done()
            if pump.done():
                ending = pump.result()
            elif revoked.done():
                ending = (
                    ApiError("grant_invalid", "The member revoked this grant.")
                    if self._hold.grant_id is not None
                    else ApiError("not_connected", "The user revoked this app's access to their AI budget.")
                )
        finally:
            for task in tasks:
                task.cancel()
            self._revocations.unwatch(self._hold.connection.id, revoked)
            # The tasks end before the response does: a pump cancelled inside a settlement first waits for its
            # write (see `HeldRequest`), so nothing of this request runs on after it.
            if tasks:
                await asyncio.wait(tasks)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._upstream.close())
            if not self._settle_requested:
                # Cut short (hang-up, revocation, upstream failure): charged for what was relayed, before the
                # response ends, so a client reading its balance next sees this request in it.
                self._settle_requested = True
                try:
                    await self._held.settle_output()
                except StoreUnavailableError:
                    ending = unavailable()
        if client_left:
            return
        if ending is not None:
            await send({"type": "http.response.body", "body": ending.sse_event(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _wait_for_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _pump(self, send: Send) -> ApiError | None:
        """Forward events until the upstream ends; return the error to end with, if any."""
        frames = SSEFrames()
        chunks = self._upstream.chunks
        assert chunks is not None
        self._send = send
        try:
            while True:
                try:
                    raw = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the upstream broke the connection mid-stream
                    log.warning("upstream stream broke: %s", type(exc).__name__)
                    metrics.upstream_failed("failed_answering")
                    return ApiError("upstream", "The model provider's stream broke off.")
                # The events of one upstream read go out in one write: one send per read, not per event.
                ending: ApiError | None = None
                for event in frames.feed(raw):
                    data = event_data(event)
                    chunk = None if data is None or data == b"[DONE]" else _json_object(data)
                    usual = False
                    if chunk is not None and _content_only(chunk):
                        self._tally.count(chunk)
                        usual = not self._past_max_tokens()
                    if usual:
                        outgoing: bytes | None = event  # the usual event: counted, and passed on as it came
                    else:
                        outgoing, ending = await self._on_event(event, data, chunk)
                    if outgoing:
                        self._batch.append(outgoing)
                        if not self._wrote_body:
                            # The first event goes out at once, before the rest of its read is examined:
                            # time to first token is what a streaming client feels.
                            await self._flush()
                    if ending is not None:
                        break
                await self._flush()
                if ending is not None:
                    return ending
        except StoreUnavailableError as exc:
            # What was relayed is charged once the store is back (the meter keeps the settlement).
            log.error("settling %s is deferred: %s", self._hold.id, exc)
            await self._flush()
            return unavailable()
        if not self._settle_requested:
            # The upstream ended without [DONE]: no usage and no clean end.
            return ApiError("upstream", "The model provider's stream ended early.")
        return None

    def _past_max_tokens(self) -> bool:
        return self._chunk_ceiling is not None and self._tally.content_chunks > self._chunk_ceiling

    async def _flush(self) -> None:
        """Write the batched events; before a settle too, so its database write never delays what streamed."""
        if self._batch and self._send is not None:
            body = b"".join(self._batch)
            self._batch.clear()
            self._wrote_body = True
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def _on_event(
        self, event: bytes, data: bytes | None, chunk: dict[str, Any] | None
    ) -> tuple[bytes | None, ApiError | None]:
        """Every event but the usual one (`_content_only`, within `max_tokens`).

        A comment, `[DONE]`, a malformed event, an error, the usage chunk, or the chunk past `max_tokens`.
        `chunk` is `data` parsed (None when it is not an object); a content-only chunk is already counted.
        """
        if data is None:
            return event, None  # keep-alive comments keep the client's connection warm too
        if data == b"[DONE]":
            if not self._settle_requested:
                await self._flush()
                self._settle_requested = True
                await self._held.settle_output()
            return _DONE, None
        if chunk is None:
            return None, ApiError("upstream", "The model provider sent a malformed stream event.")
        if isinstance(chunk.get("error"), dict):
            metrics.upstream_failed("failed_answering")
            hold = self._hold
            ceiling = hold.ceiling_key is not None
            error = from_stream_error(
                chunk["error"], member_funded=ceiling or hold.member_key is not None, ceiling=ceiling
            )
            if ceiling and error.code == "funding_invalid" and self._on_ceiling is not None:
                await self._on_ceiling(hold)
            return None, error
        if not _content_only(chunk):
            self._tally.count(chunk)
        if self._past_max_tokens():
            self._settle_requested = True
            await self._held.charge_whole()
            return None, ApiError("budget_exceeded", "Spending cap reached for this period.")
        usage = metered_usage(chunk.get("usage"))
        if usage is None:
            return event, None
        # A fast upstream's whole stream can come in one read: what came before the usage chunk goes out
        # before the settle, so the client's first token does not wait on the ledger.
        await self._flush()
        self._settle_requested = True
        settled = await self._held.settle(usage)
        chunk["wattfare"] = wattfare_field(self._hold, settled)
        return b"data: " + orjson.dumps(chunk) + b"\n\n", None


def wattfare_field(hold: Hold, settled: Settled | None) -> dict[str, Any]:
    """The `wattfare` object of an answer (the final usage chunk, or a whole body): its cost and its limit.

    `maxTokens` is the `max_tokens` Wattfare sent upstream, and `clamped` says the cap lowered it: an answer
    that stops at `finish_reason: "length"` then says why.
    """
    field: dict[str, Any] = {"requestId": hold.id}
    if settled is not None:
        field["costUsd"] = nanos_to_json_number(settled.charged)
        field["remainingUsd"] = nanos_to_json_number(settled.remaining)
    field["maxTokens"] = hold.max_tokens
    field["clamped"] = hold.clamped
    return field


def limit_headers(hold: Hold) -> dict[str, str]:
    """`Wattfare-Max-Tokens` (what was sent upstream, when Wattfare set it) and `Wattfare-Clamped`."""
    headers = {"Wattfare-Clamped": "true" if hold.clamped else "false"}
    if hold.max_tokens is not None:
        headers["Wattfare-Max-Tokens"] = str(hold.max_tokens)
    return headers


def cost_headers(charged: int, remaining: int) -> dict[str, str]:
    """The `Wattfare-Cost-Usd` / `Wattfare-Remaining-Usd` headers of a non-streamed answer."""
    return {"Wattfare-Cost-Usd": f"{nanos_to_usd(charged):f}", "Wattfare-Remaining-Usd": f"{nanos_to_usd(remaining):f}"}

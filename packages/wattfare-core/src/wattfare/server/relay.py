"""Relaying an upstream stream to the client while metering it.

Events go out as they arrive, byte for byte; only the final usage chunk is rewritten once, to carry
Wattfare's cost. Three things can end a stream early, and each still settles exactly once:
the client hangs up (charged for what was used), the connection is revoked (stopped within a second,
with a typed SSE error), or the upstream fails (typed SSE error). An upstream that ignores `max_tokens`
is cut off with `budget_exceeded` before it can spend past the hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from wattfare.metering import MeteredUsage, nanos_to_json_number, nanos_to_usd
from wattfare.server.errors import ApiError
from wattfare.server.json_value import as_array, as_object
from wattfare.server.meter import Hold, Meter
from wattfare.server.revocations import Revocations
from wattfare.server.sse_frames import SSEFrames, event_data
from wattfare.server.store.base import StoreUnavailableError
from wattfare.server.store.records import Settled
from wattfare.server.upstream.base import UpstreamResponse
from wattfare.server.upstream_errors import from_stream_error
from wattfare.server.upstream_usage import metered_usage

log = logging.getLogger("wattfare.relay")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DONE = b"data: [DONE]\n\n"


class _Tally:
    """What has streamed so far: enough to settle the request however it ends."""

    __slots__ = ("completion_bytes", "content_chunks", "usage")

    def __init__(self) -> None:
        self.usage: MeteredUsage | None = None
        self.completion_bytes = 0
        self.content_chunks = 0

    def count(self, chunk: dict[str, Any]) -> None:
        produced = 0
        for choice in as_array(chunk.get("choices")) or ():
            delta = as_object(as_object(choice) and choice.get("delta"))
            if delta is None:
                continue
            texts: list[object] = [delta.get("content"), delta.get("reasoning"), delta.get("refusal")]
            for call in as_array(delta.get("tool_calls")) or ():
                function = as_object(as_object(call) and call.get("function")) or {}
                texts += (function.get("name"), function.get("arguments"))
            produced += sum(len(text.encode()) for text in texts if isinstance(text, str))
        if produced:
            self.completion_bytes += produced
            self.content_chunks += 1


class MeteredStream:
    """An ASGI response that relays an upstream SSE stream and settles its hold exactly once."""

    def __init__(
        self,
        upstream: UpstreamResponse,
        hold: Hold,
        meter: Meter,
        revocations: Revocations,
        headers: dict[str, str],
        choices: int,
    ) -> None:
        """Relay `upstream` under `hold`."""
        self._upstream = upstream
        self._hold = hold
        self._meter = meter
        self._revocations = revocations
        self._headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        # Every non-empty chunk carries at least one token, so more chunks than this means the upstream
        # is past max_tokens for some choice.
        self._chunk_ceiling = None if hold.max_tokens is None else hold.max_tokens * choices
        self._tally = _Tally()
        self._settled = False
        # Events read but not yet written, and where to write them (set when the pump starts).
        self._batch: list[bytes] = []
        self._send: Send | None = None
        self._wrote_body = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream."""
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        revoked = self._revocations.watch(self._hold.connection.id)
        pump = asyncio.ensure_future(self._pump(send))
        hangup = asyncio.ensure_future(self._wait_for_disconnect(receive))
        revocation = asyncio.ensure_future(revoked.wait())
        ending: ApiError | None = None
        # Read before the tasks are cancelled below: a cancelled task is `done()` too, and taking that for
        # the client's hang-up would drop the ending event and the end of the response.
        client_left = True
        try:
            await asyncio.wait((pump, hangup, revocation), return_when=asyncio.FIRST_COMPLETED)
            client_left = hangup.done()
            if pump.done():
                ending = pump.result()
            elif revocation.done():
                ending = ApiError("not_connected", "The user revoked this app's access to their AI budget.")
        finally:
            for task in (pump, hangup, revocation):
                task.cancel()
            self._revocations.unwatch(self._hold.connection.id, revoked)
            await self._finish()
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
            async for raw in chunks:
                # The events of one upstream read go out in one write: one send per read, not per event.
                ending: ApiError | None = None
                for event in frames.feed(raw):
                    outgoing, ending = await self._on_event(event)
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
            # The answer was served but cannot be settled now: its hold stays and expires at the reserved amount.
            log.error("settling %s failed, its hold is left to expire: %s", self._hold.id, exc)
            return ApiError("unavailable", "Wattfare's database became unavailable; the request stopped here.")
        except Exception as exc:  # the upstream broke the connection mid-stream
            log.warning("upstream stream broke: %s", type(exc).__name__)
            return ApiError("upstream", "The model provider's stream broke off.")
        if not self._settled:
            # The upstream ended without [DONE]: no usage and no clean end.
            return ApiError("upstream", "The model provider's stream ended early.")
        return None

    async def _flush(self) -> None:
        """Write the batched events; before a settle too, so its database write never delays what streamed."""
        if self._batch and self._send is not None:
            body = b"".join(self._batch)
            self._batch.clear()
            self._wrote_body = True
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def _on_event(self, event: bytes) -> tuple[bytes | None, ApiError | None]:
        data = event_data(event)
        if data is None:
            return event, None  # keep-alive comments keep the client's connection warm too
        if data == b"[DONE]":
            if not self._settled:
                await self._flush()
                await self._settle()
            return _DONE, None
        try:
            chunk: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None, ApiError("upstream", "The model provider sent a malformed stream event.")
        if not isinstance(chunk, dict):
            return None, ApiError("upstream", "The model provider sent a malformed stream event.")
        parsed: dict[str, Any] = chunk  # pyright: ignore[reportUnknownVariableType]
        if isinstance(parsed.get("error"), dict):
            return None, from_stream_error(parsed["error"])
        self._tally.count(parsed)
        if self._chunk_ceiling is not None and self._tally.content_chunks > self._chunk_ceiling:
            # Charge the whole hold: the upstream is past the ceiling we sent it, so its usage is untrusted.
            await self._settle(fallback=self._hold.amount)
            return None, ApiError("budget_exceeded", "Spending cap reached for this period.")
        usage = metered_usage(parsed.get("usage"))
        if usage is None:
            return event, None
        self._tally.usage = usage
        # A fast upstream's whole stream can come in one read: what came before the usage chunk goes out
        # before the settle, so the client's first token does not wait on the ledger.
        await self._flush()
        settled = await self._settle()
        parsed["wattfare"] = self._cost_field(settled)
        return b"data: " + orjson.dumps(parsed) + b"\n\n", None

    def _cost_field(self, settled: Settled | None) -> dict[str, Any]:
        field: dict[str, Any] = {"requestId": self._hold.id}
        if settled is not None:
            field["costUsd"] = nanos_to_json_number(settled.charged)
            field["remainingUsd"] = nanos_to_json_number(max(0, settled.cap - settled.spent - settled.reserved))
        return field

    async def _settle(self, fallback: int | None = None) -> Settled | None:
        self._settled = True
        if fallback is not None:
            settled = await self._meter.settle(self._hold, None, fallback=fallback)
        elif self._tally.usage is not None:
            settled = await self._meter.settle(self._hold, self._tally.usage)
        else:
            settled = await self._meter.settle_estimate(self._hold, self._tally.completion_bytes)
        return settled

    async def _finish(self) -> None:
        """Settle (if the stream ended any way but cleanly) and release the upstream connection."""
        try:
            if not self._settled:
                await self._settle()
        except StoreUnavailableError as exc:
            log.error("settling %s failed, its hold is left to expire: %s", self._hold.id, exc)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._upstream.close())


def cost_headers(charged: int, remaining: int) -> dict[str, str]:
    """The `Wattfare-Cost-Usd` / `Wattfare-Remaining-Usd` headers of a non-streamed answer."""
    return {"Wattfare-Cost-Usd": f"{nanos_to_usd(charged):f}", "Wattfare-Remaining-Usd": f"{nanos_to_usd(remaining):f}"}

"""The I/O-free core of a chat stream: body bytes in, chunks out, until `[DONE]` or an error event.

Both stream twins feed it the bytes they read and yield what it returns; it decodes SSE, parses
each chunk, folds it into the accumulator, and notes how the stream stopped.
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from wattfare._client._core import clamping_headers, decimal_header, request_id
from wattfare._exceptions import APIError, StreamError, error_from_stream_event
from wattfare._sse import SSEDecoder
from wattfare._types import ChatCompletionChunk
from wattfare._usage import StreamAccumulator

_DONE = "[DONE]"


class ChunkReader:
    """Turns a chat stream's body into `ChatCompletionChunk`s.

    Args:
        response: The stream's response; its `Wattfare-Request-Id`, `Wattfare-Remaining-Usd`,
            `Wattfare-Max-Tokens` and `Wattfare-Clamped` headers seed the accumulator.

    Attributes:
        accumulator: Everything the chunks delivered so far add up to.
        done: Whether `[DONE]` has arrived.
        error: The error that stopped the stream (an error event, a broken or truncated body), once it has.
    """

    def __init__(self, response: httpx.Response) -> None:
        max_tokens, clamped = clamping_headers(response.headers)
        self.accumulator = StreamAccumulator(
            request_id=request_id(response),
            remaining_usd=decimal_header(response.headers, "wattfare-remaining-usd"),
            max_tokens=max_tokens,
            clamped=clamped,
        )
        self.done = False
        self.error: APIError | None = None
        self._decoder = SSEDecoder()
        self._undelivered = 0

    @property
    def stopped(self) -> bool:
        """Whether nothing more will come: `[DONE]` or an error."""
        return self.done or self.error is not None

    @property
    def complete(self) -> bool:
        """Whether `[DONE]` has arrived and every chunk before it was delivered."""
        return self.done and self._undelivered == 0

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """The chunks these bytes complete; stops at `[DONE]` or at an error (then see `error`).

        Pass each chunk to `deliver` as it reaches the caller, so that the stream's state (usage,
        cost, the assembled message) never runs ahead of what the caller has seen.
        """
        chunks: list[ChatCompletionChunk] = []
        if self.stopped:
            return chunks
        for event in self._decoder.feed(data):
            if event.data == _DONE:
                self.done = True
                break
            try:
                chunk = ChatCompletionChunk.model_validate_json(event.data)
            except ValidationError as exc:
                self.error = StreamError(
                    f"unreadable stream event from Wattfare: {event.data[:200]!r}",
                    request_id=self.accumulator.request_id,
                )
                self.error.__cause__ = exc
                break
            extra = chunk.model_extra
            if extra and "error" in extra:
                self.error = error_from_stream_event(extra, request_id=self.accumulator.request_id)
                break
            chunks.append(chunk)
        self._undelivered += len(chunks)
        return chunks

    def deliver(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        """Fold a chunk from `feed` into the accumulator as it reaches the caller; returns it."""
        self._undelivered -= 1
        self.accumulator.add(chunk)
        return chunk

    def truncated(self) -> StreamError:
        """The error to raise when the body ends before `[DONE]`."""
        self.error = StreamError(
            "the stream ended before [DONE]: the answer may be incomplete", request_id=self.accumulator.request_id
        )
        return self.error

    def broken(self, exc: httpx.RequestError) -> StreamError:
        """The error to raise (`from exc`) when the connection fails mid-stream."""
        self.error = StreamError(
            f"the stream broke mid-way ({type(exc).__name__}: {exc}): the answer is incomplete",
            request_id=self.accumulator.request_id,
        )
        return self.error


def first_choice_text(chunk: ChatCompletionChunk) -> str | None:
    """The content a chunk adds to the first choice (what `text_stream` yields), if any."""
    for choice in chunk.choices:
        if choice.index == 0:
            return choice.delta.content
    return None

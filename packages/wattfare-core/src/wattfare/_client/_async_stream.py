"""`AsyncChatStream`: one streamed chat completion of `AsyncWattfare`, always closed, its metering read as it passes."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpx

from wattfare._client._core import RequestSpec
from wattfare._client._streaming import ChunkReader, first_choice_text
from wattfare._exceptions import UsageError
from wattfare._types import (
    ChatCompletion,
    ChatCompletionChunk,
    Usage,
)
from wattfare._usage import StreamAccumulator

if TYPE_CHECKING:
    from wattfare._client._async import AsyncWattfare

__all__ = ["AsyncChatStream"]


class AsyncChatStream:
    """A streamed chat completion. Use it in an `async with` block, which always closes the response.

    The request is sent on entering the block (errors such as `BudgetExceededError` raise there).
    Iterate it (`async for`) for `ChatCompletionChunk`s, or `text_stream` for the text; both consume the same
    stream. An error event mid-way raises its typed error from the iteration.
    """

    def __init__(self, client: AsyncWattfare, spec: RequestSpec) -> None:
        self._client = client
        self._spec = spec
        self._response: httpx.Response | None = None
        self._reader: ChunkReader | None = None
        self._chunks: AsyncGenerator[ChatCompletionChunk] | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        if self._response is not None or self._closed:
            raise UsageError("an AsyncChatStream can be entered only once")
        self._response = await self._client._send(self._spec)  # pyright: ignore[reportPrivateUsage]
        self._reader = ChunkReader(self._response)
        self._chunks = self._iterate(self._response, self._reader)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        try:
            if self._chunks is not None:
                await self._chunks.aclose()
        finally:
            if self._response is not None:
                await self._response.aclose()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._open_chunks()

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """The content of the first choice, delta by delta."""
        return _TextDeltas(self._open_chunks())

    @property
    def usage(self) -> Usage | None:
        """Token counts, once the final chunk has arrived."""
        return self._accumulator.usage

    @property
    def cost_usd(self) -> Decimal | None:
        """What the request cost the user, once the final chunk has arrived."""
        return self._accumulator.cost_usd

    @property
    def remaining_usd(self) -> Decimal | None:
        """The budget left: before the request, then after it once the final chunk has arrived."""
        return self._accumulator.remaining_usd

    @property
    def request_id(self) -> str | None:
        """Wattfare's id for the request."""
        return self._accumulator.request_id

    @property
    def max_tokens(self) -> int | None:
        """The `max_tokens` Wattfare sent to the model provider (None: it sent none, or did not say)."""
        return self._accumulator.max_tokens

    @property
    def clamped(self) -> bool | None:
        """Whether Wattfare lowered `max_tokens` because the cap is nearly used (None: the server did not say)."""
        return self._accumulator.clamped

    @property
    def finish_reason(self) -> str | None:
        """Why the first choice stopped, once it has."""
        return self._accumulator.finish_reason

    async def get_final_completion(self) -> ChatCompletion:
        """Read the stream to its end and return it assembled (content and tool calls merged)."""
        reader = self._reader
        if reader is None or not reader.complete:
            async for _ in self._open_chunks():
                pass
            if reader is None or not reader.complete:
                # It failed (and raised) earlier: never pass off a partial answer as the final one.
                raise (reader.error if reader else None) or UsageError("the stream did not complete")
        return reader.accumulator.completion()

    @property
    def _accumulator(self) -> StreamAccumulator:
        return self._reader.accumulator if self._reader is not None else _EMPTY

    def _open_chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        if self._chunks is None:
            raise UsageError("enter the stream first: `async with user.stream(...) as s:`")
        if self._closed:
            raise UsageError("the stream is closed: read it inside its `async with` block")
        return self._chunks

    @staticmethod
    async def _iterate(response: httpx.Response, reader: ChunkReader) -> AsyncGenerator[ChatCompletionChunk]:
        body = response.aiter_bytes()
        try:
            while True:
                try:
                    data = await anext(body)
                except StopAsyncIteration:
                    raise reader.truncated() from None
                except httpx.RequestError as exc:
                    raise reader.broken(exc) from exc
                for chunk in reader.feed(data):
                    yield reader.deliver(chunk)
                if reader.error is not None:
                    raise reader.error
                if reader.done:
                    return
        finally:
            # Closed here, in this task, rather than left to the event loop's finalizer after we are gone.
            if isinstance(body, AsyncGenerator):
                await body.aclose()


_EMPTY = StreamAccumulator()


class _TextDeltas:
    # An iterator class, not an async generator: abandoning it mid-way then needs no event-loop finalizer.
    def __init__(self, chunks: AsyncIterator[ChatCompletionChunk]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        while True:
            text = first_choice_text(await anext(self._chunks))
            if text:
                return text

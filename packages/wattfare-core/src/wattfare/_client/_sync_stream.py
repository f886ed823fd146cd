"""`ChatStream`: one streamed chat completion of `Wattfare`, always closed, its metering read as it passes."""

from __future__ import annotations

from collections.abc import Generator, Iterator
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
    from wattfare._client._sync import Wattfare

__all__ = ["ChatStream"]


class ChatStream:
    """A streamed chat completion. Use it in a `with` block, which always closes the response.

    The request is sent on entering the block (errors such as `BudgetExceededError` raise there).
    Iterate it for `ChatCompletionChunk`s, or `text_stream` for the text; both consume the same
    stream. An error event mid-way raises its typed error from the iteration.
    """

    def __init__(self, client: Wattfare, spec: RequestSpec) -> None:
        self._client = client
        self._spec = spec
        self._response: httpx.Response | None = None
        self._reader: ChunkReader | None = None
        self._chunks: Generator[ChatCompletionChunk] | None = None
        self._closed = False

    def __enter__(self) -> Self:
        if self._response is not None or self._closed:
            raise UsageError("a ChatStream can be entered only once")
        self._response = self._client._send(self._spec)  # pyright: ignore[reportPrivateUsage]
        self._reader = ChunkReader(self._response)
        self._chunks = self._iterate(self._response, self._reader)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        try:
            if self._chunks is not None:
                self._chunks.close()
        finally:
            if self._response is not None:
                self._response.close()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._open_chunks()

    @property
    def text_stream(self) -> Iterator[str]:
        """The content of the first choice, delta by delta."""
        return self._texts(self._open_chunks())

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

    def get_final_completion(self) -> ChatCompletion:
        """Read the stream to its end and return it assembled (content and tool calls merged)."""
        reader = self._reader
        if reader is None or not reader.complete:
            for _ in self._open_chunks():
                pass
            if reader is None or not reader.complete:
                # It failed (and raised) earlier: never pass off a partial answer as the final one.
                raise (reader.error if reader else None) or UsageError("the stream did not complete")
        return reader.accumulator.completion()

    @property
    def _accumulator(self) -> StreamAccumulator:
        return self._reader.accumulator if self._reader is not None else _EMPTY

    def _open_chunks(self) -> Iterator[ChatCompletionChunk]:
        if self._chunks is None:
            raise UsageError("enter the stream first: `with user.stream(...) as s:`")
        if self._closed:
            raise UsageError("the stream is closed: read it inside its `with` block")
        return self._chunks

    @staticmethod
    def _texts(chunks: Iterator[ChatCompletionChunk]) -> Iterator[str]:
        for chunk in chunks:
            text = first_choice_text(chunk)
            if text:
                yield text

    @staticmethod
    def _iterate(response: httpx.Response, reader: ChunkReader) -> Generator[ChatCompletionChunk]:
        body = response.iter_bytes()
        try:
            while True:
                try:
                    data = next(body)
                except StopIteration:
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
            if isinstance(body, Generator):
                body.close()


_EMPTY = StreamAccumulator()

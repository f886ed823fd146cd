"""The sync LiteLLM stream of a Wattfare stream already sent: translated lazily, its response always released.

`WattfareLLM.streaming` sends the request itself (so a refusal raises at call time) and hands LiteLLM this iterator.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack

from litellm.types.utils import GenericStreamingChunk

from wattfare import ChatStream, WattfareError
from wattfare_litellm._chunks import ChunkTranslator


class SyncChunks(Iterator[GenericStreamingChunk]):
    """A stream already sent (so its errors raised at call time), read lazily; `close` always releases it."""

    def __init__(self, stack: ExitStack, stream: ChatStream, fail: Callable[[WattfareError], Exception]) -> None:
        self._stack = stack
        self._chunks = self._read(stream, fail)

    def __next__(self) -> GenericStreamingChunk:
        return next(self._chunks)

    def close(self) -> None:
        """Stop reading and close the response (LiteLLM's stream wrapper calls this)."""
        try:
            self._chunks.close()
        finally:
            self._stack.close()

    def _read(self, stream: ChatStream, fail: Callable[[WattfareError], Exception]) -> Generator[GenericStreamingChunk]:
        with self._stack:
            translator = ChunkTranslator()
            try:
                for chunk in stream:
                    yield from translator.translate(chunk)
            except WattfareError as exc:
                raise fail(exc) from exc
            yield translator.final(stream)

"""What Wattfare says about a model's size: its context window and longest answer, read once from `GET /models`.

LlamaIndex reads `llm.metadata` often (every chat event, every agent memory); the list is fetched on the
first read that needs it and kept. A failed fetch is not an error for `metadata` (the first completion
reports the real problem): LlamaIndex's defaults stand in, and the fetch is tried again a minute later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wattfare import ModelInfo, WattfareError

__all__ = ["ModelCatalog", "ModelLimits"]

_log = logging.getLogger("wattfare_llamaindex")

RETRY_AFTER_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """A model's size, as Wattfare's model list gives it; None where the list says nothing.

    Attributes:
        context_window: Tokens of prompt and answer together (`context_length`).
        max_output: The longest answer, in tokens (`top_provider.max_completion_tokens`).
    """

    context_window: int | None = None
    max_output: int | None = None


def _limits(info: ModelInfo) -> ModelLimits:
    provider = info.top_provider
    context = info.context_length or (provider.context_length if provider else None)
    return ModelLimits(context_window=context, max_output=provider.max_completion_tokens if provider else None)


class ModelCatalog:
    """Model limits by id, fetched once and shared by every `WattfareLLM` copy that shares a connection.

    Args:
        fetch: Returns Wattfare's model list (`Wattfare.models`).
        clock: Monotonic seconds, for spacing retries after a failed fetch.
    """

    def __init__(
        self, fetch: Callable[[], Sequence[ModelInfo]], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, ModelLimits] | None = None
        self._failed_at: float | None = None

    def known(self, model: str) -> ModelLimits | None:
        """The limits of `model` if the list was already fetched; never fetches."""
        return self._models.get(model) if self._models is not None else None

    def lookup(self, model: str) -> ModelLimits | None:
        """The limits of `model`, fetching the list if it was not yet (None: unknown or unreachable)."""
        with self._lock:
            if self._models is None and self._may_try():
                try:
                    self._models = {info.id: _limits(info) for info in self._fetch()}
                except WattfareError as exc:
                    self._failed_at = self._clock()
                    _log.warning("could not read Wattfare's model list (%s); using LlamaIndex's defaults", exc)
            models = self._models
        if models is None:
            return None
        limits = models.get(model)
        if limits is None:
            _log.warning("model %r is not in Wattfare's model list; using LlamaIndex's defaults", model)
        return limits

    def _may_try(self) -> bool:
        return self._failed_at is None or self._clock() - self._failed_at >= RETRY_AFTER_SECONDS

"""Model prices, read from the upstream's model lists and kept fresh, with a bundled snapshot as fallback.

Chat models come from the upstream's `/models`; embedding models from its `/embeddings/models` (OpenRouter lists
them apart, `architecture.output_modalities: ["embeddings"]`, priced per input token). An unknown or unpriceable
model is refused, never served as free.
"""

from __future__ import annotations

import difflib
import importlib.resources
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from wattfare.metering import ModelPricing, UnpricedModelError, parse_pricing
from wattfare.server.instants import utc_now
from wattfare.server.json_value import as_object
from wattfare.server.periodic import Periodic
from wattfare.server.upstream.base import Upstream

log = logging.getLogger("wattfare.prices")


@dataclass(frozen=True, slots=True)
class PricedModel:
    """A model Wattfare can meter: its prices and its output ceiling."""

    id: str
    pricing: ModelPricing
    context_length: int | None
    max_output_tokens: int | None
    listing: Mapping[str, Any]

    @property
    def reasons(self) -> bool:
        """Whether the model thinks before it answers (OpenRouter lists `reasoning` among its parameters)."""
        supported = self.listing.get("supported_parameters")
        return isinstance(supported, list) and ("reasoning" in supported or "include_reasoning" in supported)

    @property
    def embeds(self) -> bool:
        """Whether the model answers `/embeddings`, not `/chat/completions` (see `is_embedding_entry`)."""
        return is_embedding_entry(self.listing)


def is_embedding_entry(entry: Mapping[str, Any]) -> bool:
    """Whether a `/models` entry is an embedding model: its `architecture.output_modalities` has "embeddings"."""
    architecture = as_object(entry.get("architecture")) or {}
    outputs = architecture.get("output_modalities")
    return isinstance(outputs, list) and "embeddings" in outputs


def as_embedding_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry of an embedding model list, marked as one and priced for a model that writes nothing.

    Listings of embedding models may carry only `pricing.prompt` (their output is free) or no `architecture`:
    they are embedding models all the same, so the entry says so, and its completion price is 0.
    """
    marked = dict(entry)
    architecture = dict(as_object(entry.get("architecture")) or {})
    if not is_embedding_entry(marked):
        architecture["output_modalities"] = ["embeddings"]
        marked["architecture"] = architecture
    pricing = as_object(entry.get("pricing"))
    if pricing is not None and pricing.get("completion") is None:
        marked["pricing"] = {**pricing, "completion": "0"}
    return marked


def _bundled(name: str) -> list[dict[str, Any]]:
    raw = importlib.resources.files("wattfare.server.billing.data").joinpath(name).read_bytes()
    data: Any = orjson.loads(raw)
    return list(data["data"])


def load_snapshot() -> list[dict[str, Any]]:
    """The bundled price snapshot (OpenRouter `/models` entries): chat models, then embedding models."""
    return _bundled("models_snapshot.json") + load_embedding_snapshot()


def load_embedding_snapshot() -> list[dict[str, Any]]:
    """The bundled embedding models (OpenRouter `/embeddings/models` entries, each naming its price's source)."""
    return [as_embedding_entry(entry) for entry in _bundled("embedding_models.json")]


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def price_models(entries: Iterable[Mapping[str, Any]]) -> dict[str, PricedModel]:
    """Parse `/models` entries, skipping those without usable prices."""
    models: dict[str, PricedModel] = {}
    for entry in entries:
        model_id = entry.get("id")
        pricing = entry.get("pricing")
        if not isinstance(model_id, str) or not isinstance(pricing, Mapping):
            continue
        try:
            parsed = parse_pricing(pricing)  # pyright: ignore[reportUnknownArgumentType]
        except UnpricedModelError:
            continue
        top = as_object(entry.get("top_provider")) or {}
        models[model_id] = PricedModel(
            id=model_id,
            pricing=parsed,
            context_length=_int_or_none(entry.get("context_length")),
            max_output_tokens=_int_or_none(top.get("max_completion_tokens")),
            listing=entry,
        )
    return models


_HINT_MAX_LENGTH = 128  # a longer "model" is no typo; comparing it would only cost CPU on the error path


def similar_model_ids(wanted: str, known: Iterable[str]) -> list[str]:
    """The known ids closest to `wanted`, best first (at most three).

    The same name under a provider (`gpt-4o-mini` -> `openai/gpt-4o-mini`) or in another case first, then
    near spellings of the name.
    """
    if not wanted or len(wanted) > _HINT_MAX_LENGTH:
        return []
    ids = sorted(known)
    folded = wanted.casefold()
    exact = [i for i in ids if i.casefold() == folded or i.casefold().split("/", 1)[-1] == folded.split("/", 1)[-1]]
    if exact:
        return exact[:3]
    names = {i.split("/", 1)[-1].casefold(): i for i in ids}
    near = difflib.get_close_matches(folded.split("/", 1)[-1], list(names), n=3, cutoff=0.75)
    return [names[name] for name in near]


class PriceBook:
    """The priced models one upstream serves, refreshed in the background."""

    def __init__(
        self,
        upstream: Upstream,
        fallback: list[dict[str, Any]] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Start from the fallback list (the bundled snapshot by default) until the upstream answers."""
        self._upstream = upstream
        self._models = price_models(fallback if fallback is not None else load_snapshot())
        self.source = "snapshot"
        self._refresher: Periodic | None = None
        self._clock = clock
        # The last good refresh of the chat prices; before the first one, the start (the snapshot is new to us).
        self._fresh_since = clock()

    def age_seconds(self) -> float:
        """Seconds since the prices were last read from the upstream (since the start, before the first read)."""
        return max(0.0, (self._clock() - self._fresh_since).total_seconds())

    def get(self, model_id: str) -> PricedModel | None:
        """The priced model, or None when Wattfare cannot meter it."""
        return self._models.get(model_id)

    def similar(self, model_id: str, *, embeddings: bool | None = None) -> list[str]:
        """Up to three priced ids a caller who wrote `model_id` probably meant (for the `model_not_found` hint).

        `embeddings` limits them to embedding models (True) or chat models (False): what the endpoint serves.
        """
        known = (i for i, model in self._models.items() if embeddings is None or model.embeds == embeddings)
        return similar_model_ids(model_id, known)

    def models(self) -> list[PricedModel]:
        """Every priced model, sorted by id."""
        return [self._models[k] for k in sorted(self._models)]

    async def refresh(self) -> bool:
        """Re-read prices from the upstream; keep the current ones when it fails.

        The embedding models are a list of their own, read second: the chat prices apply as soon as they are read
        (a server starting up serves chat no later for it), and when only the embedding list fails, the embedding
        prices in force are kept.
        """
        try:
            fresh = price_models(await self._upstream.list_models())
        except Exception as exc:  # any failure keeps the last good prices
            log.warning("model price refresh from %s failed: %s", self._upstream.name, exc)
            return False
        if not fresh:
            return False
        self._models = fresh | {model_id: model for model_id, model in self._models.items() if model.embeds}
        self.source = self._upstream.name
        self._fresh_since = self._clock()
        try:
            listed = await self._upstream.list_embedding_models()
        except Exception as exc:
            log.warning("embedding model price refresh from %s failed: %s", self._upstream.name, exc)
            return True
        self._models = fresh | price_models(as_embedding_entry(entry) for entry in listed)
        return True

    def start(self, every_seconds: float) -> None:
        """Refresh now and then every `every_seconds`, in the background."""
        self._refresher = Periodic(self.refresh, every_seconds, what="the price refresh", log=log)
        self._refresher.start()

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._refresher is not None:
            await self._refresher.stop()

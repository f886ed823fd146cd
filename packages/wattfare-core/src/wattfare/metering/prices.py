"""Model prices: OpenRouter's ``pricing`` object, its conditional ``overrides``, and the worst case.

OpenRouter publishes prices as strings of USD per unit (token, request, image) and a list of
``overrides``: flat entries holding price keys plus condition fields (``min_prompt_tokens``, a daily
``utc_start``/``utc_end`` window as HHMM clock numbers that may wrap past midnight, ``utc_days``). An
entry applies when all of its conditions hold; among applicable entries, later ones win per key, and
keys an entry lacks keep the base price. Entries with a condition field we do not know are skipped, as
OpenRouter asks of consumers.

A price we cannot read makes the whole model unpriced (`UnpricedModelError`): the proxy refuses
such a model rather than treat it as free.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from wattfare.metering.money import parse_usd

__all__ = ["ModelPricing", "PriceOverride", "PriceSet", "UnpricedModelError", "parse_pricing"]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PriceSet:
    """The prices that apply to one request, in USD per unit.

    A ``None`` optional price means "not priced separately": those tokens are billed at the base rate
    (``prompt`` for cache and audio tokens, ``completion`` for reasoning tokens).

    Attributes:
        prompt: Per prompt (input) token.
        completion: Per completion (output) token, reasoning included.
        request: Per request.
        image: Per input image.
        input_cache_read: Per prompt token read from the provider's cache.
        input_cache_write: Per prompt token written to the provider's cache.
        internal_reasoning: Per reasoning token (a part of the completion tokens).
        input_cache_write_1h: Per prompt token written to a one-hour cache.
        audio: Per audio input token.
    """

    prompt: Decimal
    completion: Decimal
    request: Decimal = _ZERO
    image: Decimal = _ZERO
    input_cache_read: Decimal | None = None
    input_cache_write: Decimal | None = None
    internal_reasoning: Decimal | None = None
    input_cache_write_1h: Decimal | None = None
    audio: Decimal | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value: object = getattr(self, field.name)
            if value is None and field.name in _OPTIONAL_KEYS:
                continue
            if not isinstance(value, Decimal):
                raise TypeError(f"price {field.name} must be a Decimal, not {type(value).__name__}")
            if not value.is_finite() or value < 0:
                raise ValueError(f"price {field.name} must be a finite, non-negative Decimal: {value}")

    @property
    def prompt_ceiling(self) -> Decimal:
        """The highest rate any prompt token can be billed at (cache writes and audio may cost more)."""
        rates = [self.prompt, self.input_cache_read, self.input_cache_write, self.input_cache_write_1h, self.audio]
        return max(rate for rate in rates if rate is not None)

    @property
    def completion_ceiling(self) -> Decimal:
        """The highest rate any completion token can be billed at (reasoning may be priced apart)."""
        if self.internal_reasoning is None:
            return self.completion
        return max(self.completion, self.internal_reasoning)


# A tuple, not a set: parsed override prices keep the fields' order on every run.
_PRICE_KEYS = tuple(field.name for field in dataclasses.fields(PriceSet))
_REQUIRED_KEYS = ("prompt", "completion")
_OPTIONAL_KEYS = frozenset(name for name in _PRICE_KEYS if name not in {"prompt", "completion", "request", "image"})
# Which rate a token is billed at when its own optional price is absent.
_FALLBACK_KEY = {name: "completion" if name == "internal_reasoning" else "prompt" for name in _OPTIONAL_KEYS}

_CONDITION_KEYS = frozenset({"min_prompt_tokens", "utc_start", "utc_end", "utc_days"})
# A key that looks like a condition is one, whatever its value: mistaking an unknown condition for a
# price key would apply its entry unconditionally.
_CONDITION_PREFIXES = ("min_", "max_", "utc_")

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM = re.compile(r"(\d{1,2}):?(\d{2})")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One conditional entry of ``pricing.overrides``; it applies when every condition it has holds.

    Attributes:
        prices: The prices it sets, keyed by `PriceSet` field name.
        min_prompt_tokens: Applies when the prompt has strictly more tokens than this.
        utc_start: Inclusive start of a daily UTC window, ``"HHMM"``.
        utc_end: Exclusive end of that window, ``"HHMM"`` (``"2400"`` is midnight at the end of the day). The
            window wraps past midnight when it ends before it starts, and covers the whole day when both are
            equal. With only a start it runs to midnight; with only an end it runs from midnight.
        utc_days: UTC weekdays it applies on (Monday is 0), judged at the request instant.
    """

    prices: dict[str, Decimal]
    min_prompt_tokens: int | None = None
    utc_start: str | None = None
    utc_end: str | None = None
    utc_days: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for key, price in self.prices.items():
            value = cast("object", price)
            if key not in _PRICE_KEYS:
                raise ValueError(f"unknown price key {key!r}")
            if not isinstance(value, Decimal):
                raise TypeError(f"price {key} must be a Decimal, not {type(value).__name__}")
            if not value.is_finite() or value < 0:
                raise ValueError(f"price {key} must be a finite, non-negative Decimal: {value}")
        if self.min_prompt_tokens is not None and self.min_prompt_tokens < 0:
            raise ValueError(f"min_prompt_tokens must not be negative: {self.min_prompt_tokens}")
        for bound in (self.utc_start, self.utc_end):
            if bound is not None:
                _minute_of_day(bound)
        if self.utc_days is not None and not all(0 <= day <= 6 for day in self.utc_days):
            raise ValueError(f"utc_days must be weekday numbers 0-6: {self.utc_days}")

    def holds_at(self, moment: datetime) -> bool:
        """Whether the time conditions (window and days) hold at a UTC instant.

        Args:
            moment: A timezone-aware instant, already in UTC.

        Returns:
            True when the entry's time conditions, if any, hold.
        """
        if self.utc_days is not None and moment.weekday() not in self.utc_days:
            return False
        if self.utc_start is None and self.utc_end is None:
            return True
        start = 0 if self.utc_start is None else _minute_of_day(self.utc_start)
        end = _MINUTES_PER_DAY if self.utc_end is None else _minute_of_day(self.utc_end)
        now = moment.hour * 60 + moment.minute
        if start == end:
            return True
        if start < end:
            return start <= now < end
        return now >= start or now < end

    def holds_for(self, prompt_tokens: int) -> bool:
        """Whether the prompt-size condition holds (strictly more tokens than ``min_prompt_tokens``).

        Args:
            prompt_tokens: The request's prompt tokens.

        Returns:
            True when the entry has no size condition or the prompt is larger than its threshold.
        """
        return self.min_prompt_tokens is None or prompt_tokens > self.min_prompt_tokens


@dataclass(frozen=True, slots=True)
class ModelPricing:
    """A model's prices: the default set and its conditional overrides, in OpenRouter's order.

    Attributes:
        default: The prices when no override applies.
        overrides: The conditional entries; later ones win per key.
    """

    default: PriceSet
    overrides: tuple[PriceOverride, ...] = ()

    def at(self, when: datetime, prompt_tokens: int) -> PriceSet:
        """The prices for a request made at ``when`` with ``prompt_tokens`` prompt tokens.

        Args:
            when: A timezone-aware instant (converted to UTC).
            prompt_tokens: The request's actual prompt tokens.

        Returns:
            The default prices with every applicable override applied in order.

        Raises:
            ValueError: ``when`` is naive or ``prompt_tokens`` is negative.
        """
        moment = _utc(when)
        if prompt_tokens < 0:
            raise ValueError(f"prompt_tokens must not be negative: {prompt_tokens}")
        merged: dict[str, Decimal] = {}
        for override in self.overrides:
            if override.holds_for(prompt_tokens) and override.holds_at(moment):
                merged.update(override.prices)
        return dataclasses.replace(self.default, **merged) if merged else self.default

    def worst_case(self, when: datetime, prompt_token_bound: int) -> PriceSet:
        """Per-key maximum prices over every set `at` can return for a prompt of at most the bound.

        Takes the default and every override whose time conditions hold at ``when`` and whose
        ``min_prompt_tokens`` (if any) is below the bound, so each key is at least what `at` gives for
        any actual prompt size up to ``prompt_token_bound``. Used to price holds.

        Args:
            when: A timezone-aware instant (converted to UTC).
            prompt_token_bound: An upper bound on the request's prompt tokens.

        Returns:
            A price set that no applicable set exceeds on any key.

        Raises:
            ValueError: ``when`` is naive or the bound is negative.
        """
        moment = _utc(when)
        if prompt_token_bound < 0:
            raise ValueError(f"prompt_token_bound must not be negative: {prompt_token_bound}")
        candidates: dict[str, list[Decimal]] = {}
        for override in self.overrides:
            if override.holds_for(prompt_token_bound) and override.holds_at(moment):
                for key, value in override.prices.items():
                    candidates.setdefault(key, []).append(value)
        if not candidates:
            return self.default
        worst: dict[str, Decimal | None] = {}
        for key in (*_REQUIRED_KEYS, "request", "image"):
            worst[key] = max([cast("Decimal", getattr(self.default, key)), *candidates.get(key, ())])
        for key in _OPTIONAL_KEYS:
            default: Decimal | None = getattr(self.default, key)
            values = candidates.get(key, [])
            if default is None and values:
                # Where no override applies these tokens bill at the fallback rate, so that rate competes.
                values = [*values, cast("Decimal", worst[_FALLBACK_KEY[key]])]
            elif default is not None:
                values = [default, *values]
            worst[key] = max(values) if values else None
        return PriceSet(**cast("dict[str, Decimal]", worst))


class UnpricedModelError(ValueError):
    """A model's pricing cannot be read or is variable (OpenRouter's ``"-1"``), so it cannot be metered."""


def parse_pricing(pricing: Mapping[str, object]) -> ModelPricing:
    """Read an OpenRouter ``/models`` ``pricing`` object.

    Prices are strings of USD per unit (ints are tolerated); a missing ``request`` or ``image`` is 0, a
    missing optional price is ``None`` and unknown price keys are ignored. Override entries with a
    condition field we do not know (a key starting ``min_``, ``max_`` or ``utc_``, or any non-string
    value under an unknown key) are skipped.

    Args:
        pricing: The model's ``pricing`` mapping.

    Returns:
        The parsed pricing.

    Raises:
        UnpricedModelError: ``prompt`` or ``completion`` is missing; a price is negative (variable-priced
            routers), a float or unreadable; or an override's known condition is malformed.
    """
    given = cast("object", pricing)
    if not isinstance(given, Mapping):
        raise UnpricedModelError(f"pricing must be an object, not {type(given).__name__}")
    default = _parse_prices(pricing, required=True)
    raw_overrides = pricing.get("overrides")
    if raw_overrides is None:
        return ModelPricing(PriceSet(**default))
    if not isinstance(raw_overrides, list | tuple):
        raise UnpricedModelError(f"pricing.overrides must be a list, not {type(raw_overrides).__name__}")
    overrides: list[PriceOverride] = []
    for raw in cast("Iterable[object]", raw_overrides):
        if not isinstance(raw, Mapping):
            raise UnpricedModelError(f"a pricing override must be an object, not {type(raw).__name__}")
        override = _parse_override(cast("Mapping[str, object]", raw))
        if override is not None:
            overrides.append(override)
    return ModelPricing(PriceSet(**default), tuple(overrides))


def _parse_override(raw: Mapping[str, object]) -> PriceOverride | None:
    for key, value in raw.items():
        if key in _CONDITION_KEYS or key in _PRICE_KEYS:
            continue
        if key.startswith(_CONDITION_PREFIXES) or not isinstance(value, str):
            return None
    try:
        return PriceOverride(
            prices=_parse_prices(raw, required=False),
            min_prompt_tokens=_parse_min_prompt_tokens(raw.get("min_prompt_tokens")),
            utc_start=_parse_clock(raw.get("utc_start")),
            utc_end=_parse_clock(raw.get("utc_end")),
            utc_days=_parse_days(raw.get("utc_days")),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, UnpricedModelError):
            raise
        raise UnpricedModelError(f"malformed pricing override {dict(raw)!r}: {exc}") from exc


def _parse_prices(raw: Mapping[str, object], *, required: bool) -> dict[str, Decimal]:
    prices: dict[str, Decimal] = {}
    for key in _PRICE_KEYS:
        value = raw.get(key)
        if value is None:
            if required and key in _REQUIRED_KEYS:
                raise UnpricedModelError(f"pricing has no {key} price")
            continue
        prices[key] = _parse_price(key, value)
    return prices


def _parse_price(key: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnpricedModelError(f"price {key} must be a decimal string, not {type(value).__name__}: {value!r}")
    try:
        price = parse_usd(value)
    except (TypeError, ValueError) as exc:
        raise UnpricedModelError(f"price {key} is not a decimal amount: {value!r}") from exc
    if price < 0:
        raise UnpricedModelError(f"price {key} is variable or negative: {value!r}")
    # A zero with an exponent (0E-30) compares equal but would leak its exponent into arithmetic.
    return price if price else _ZERO


def _parse_min_prompt_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"min_prompt_tokens must be an integer: {value!r}")
    return value


def _parse_clock(value: object) -> str | None:
    """Normalize an HHMM clock (the number 400, or "0400", "400", "04:00") to a four-digit string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"a UTC clock time must be HHMM: {value!r}")
    text = f"{value:04d}" if isinstance(value, int) else value.strip()
    match = _HHMM.fullmatch(text)
    if match is None:
        raise ValueError(f"a UTC clock time must be HHMM: {value!r}")
    clock = f"{int(match[1]):02d}{match[2]}"
    _minute_of_day(clock)
    return clock


def _parse_days(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"utc_days must be a list: {value!r}")
    return tuple(sorted({_parse_day(day) for day in cast("Iterable[object]", value)}))


def _parse_day(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        # Full names and any unambiguous abbreviation of at least three letters ("mon", "thurs").
        if len(name) >= 3:
            for number, day in enumerate(_DAY_NAMES):
                if day.startswith(name):
                    return number
    raise ValueError(f"not a weekday (0-6, Monday is 0, or a day name): {value!r}")


def _minute_of_day(clock: str) -> int:
    if len(clock) != 4 or not clock.isascii() or not clock.isdigit():
        raise ValueError(f"a UTC clock time must be four digits HHMM: {clock!r}")
    hours, minutes = int(clock[:2]), int(clock[2:])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"not a clock time: {clock!r}")
    return hours * 60 + minutes


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"a naive datetime is ambiguous; give a timezone-aware one: {when!r}")
    return when.astimezone(UTC)

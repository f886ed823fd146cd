"""A price set as whole numbers over one power-of-ten denominator: exact cost arithmetic on plain ints.

Prices are decimals of USD per unit, so every rate in nano-USD is ``n / 10**k`` exactly. Scaling a whole
set to its largest ``k`` turns each cost into a sum of integer products and one rounding division: the
same exact result as `fractions.Fraction` arithmetic, at a small part of its cost (a request's pricing
went from ~70 µs of Decimal-to-Fraction conversions and Fraction operations to a few µs). A model's
price set is computed once and cached: price sets are immutable values, so caching them stays pure.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal

from wattfare.metering.prices import PriceSet

__all__ = ["ScaledRates", "scaled_rates"]

_NANOS_EXPONENT = 9  # nano-USD per USD is 10**9


@dataclass(frozen=True, slots=True)
class ScaledRates:
    """Nano-USD rates of one `PriceSet`, each ``rate * denominator`` exactly.

    Optional prices are already replaced by their fallback (`PriceSet`'s rules), and the two ceilings are
    the highest rate a prompt or completion token can bill at.
    """

    denominator: int
    prompt: int
    completion: int
    request: int
    image: int
    cache_read: int
    cache_write: int
    reasoning: int
    prompt_ceiling: int
    completion_ceiling: int


@functools.lru_cache(maxsize=4096)
def scaled_rates(prices: PriceSet) -> ScaledRates:
    """The rates of `prices` over their common power-of-ten denominator (cached per price set)."""
    chosen = (
        prices.prompt,
        prices.completion,
        prices.request,
        prices.image,
        prices.prompt if prices.input_cache_read is None else prices.input_cache_read,
        prices.prompt if prices.input_cache_write is None else prices.input_cache_write,
        prices.completion if prices.internal_reasoning is None else prices.internal_reasoning,
        prices.prompt_ceiling,
        prices.completion_ceiling,
    )
    parts = [_digits_and_exponent(price) for price in chosen]
    scale = max(0, *(-exponent for _, exponent in parts))
    scaled = [digits * 10 ** (exponent + scale) for digits, exponent in parts]
    return ScaledRates(10**scale, *scaled)


def _digits_and_exponent(usd: Decimal) -> tuple[int, int]:
    """``usd`` in nano-USD as ``digits * 10**exponent``, exactly (prices are finite and non-negative)."""
    _, digits, exponent = usd.as_tuple()
    assert isinstance(exponent, int)  # PriceSet admits finite prices only
    return int("".join(map(str, digits)) or "0"), exponent + _NANOS_EXPONENT

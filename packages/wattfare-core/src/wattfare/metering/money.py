"""Money: integer nano-USD inside, exact decimal USD at the edges.

Amounts are held as ``int`` nano-USD (1e-9 USD): a cheap model's token costs a few tens of nanos, so
micro-USD would be too coarse, and integers add up without drift. ``Decimal`` appears only where money
crosses an edge (a price string, a JSON number), and a ``float`` is never accepted as money.

Roundings are named for the direction they move an amount on the number line, so they mean the same
thing for refunds (negative amounts) as for charges:

* ``"up"``: toward +infinity (worst-case holds, which must never be short);
* ``"down"``: toward -infinity (what a budget affords);
* ``"half_up"``: to the nearest nano, ties away from zero (settled costs).
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Literal, cast

__all__ = [
    "NANOS_PER_USD",
    "Rounding",
    "nanos_to_json_number",
    "nanos_to_usd",
    "parse_usd",
    "usd_to_nanos",
]

NANOS_PER_USD: int = 1_000_000_000
"""Nano-USD in one US dollar."""

Rounding = Literal["up", "half_up", "down"]
"""How an amount that falls between two nanos is rounded (see the module docstring)."""

# Plain decimal or scientific notation; no whitespace inside, no underscores, no NaN/Infinity.
_USD_PATTERN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

# Amounts beyond 10**30 USD are not money but corrupt data; refusing them also keeps the exact
# arithmetic below from building astronomically large integers out of an exponent like 1e999999.
_MAX_ADJUSTED_EXPONENT = 30

_DECIMAL_ROUNDING = {"up": ROUND_CEILING, "down": ROUND_FLOOR, "half_up": ROUND_HALF_UP}
_ONE_NANO = Decimal(1).scaleb(-9)
# Wide enough that quantizing any accepted amount to the nano is exact before its single rounding.
_EXACT = Context(prec=_MAX_ADJUSTED_EXPONENT + 20, Emax=999_999, Emin=-999_999)


def parse_usd(value: str | int | Decimal) -> Decimal:
    """Parse an amount of US dollars exactly.

    Args:
        value: A decimal string (``"0.0000025"``, ``"2.5e-6"``; surrounding whitespace is ignored),
            an ``int`` or a ``Decimal``.

    Returns:
        The exact amount; negative amounts are allowed (refunds, OpenRouter's ``"-1"`` marker).

    Raises:
        TypeError: ``value`` is a float, a bool or another type: money is never a float.
        ValueError: ``value`` is not a finite decimal number, or is implausibly large.
    """
    given = cast("object", value)
    if isinstance(given, bool) or not isinstance(given, str | int | Decimal):
        raise TypeError(f"money must be a decimal string, int or Decimal, not {type(given).__name__}")
    if isinstance(given, str):
        text = given.strip()
        if _USD_PATTERN.fullmatch(text) is None:
            raise ValueError(f"not a decimal amount of USD: {given!r}")
        amount = Decimal(text)
    else:
        amount = Decimal(given)
    if not amount.is_finite():
        raise ValueError(f"not a finite amount of USD: {given!r}")
    if amount and amount.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise ValueError(f"implausibly large amount of USD: {given!r}")
    return amount


def usd_to_nanos(value: str | int | Decimal, *, rounding: Rounding = "half_up") -> int:
    """Convert an amount of US dollars to integer nano-USD.

    Args:
        value: As for `parse_usd`.
        rounding: How to round an amount finer than a nano (see the module docstring).

    Returns:
        The amount in nano-USD.

    Raises:
        TypeError: ``value`` is a float, a bool or another type.
        ValueError: ``value`` is not a finite decimal number, is implausibly large, or ``rounding`` is unknown.
    """
    amount = parse_usd(value)
    mode = _DECIMAL_ROUNDING.get(rounding)
    if mode is None:
        raise ValueError(f"unknown rounding {rounding!r}")
    try:
        quantized = amount.quantize(_ONE_NANO, rounding=mode, context=_EXACT)
    except InvalidOperation as exc:  # pragma: no cover - excluded by the magnitude check in parse_usd
        raise ValueError(f"amount out of range: {value!r}") from exc
    return int(quantized.scaleb(9, context=_EXACT))


def nanos_to_usd(nanos: int) -> Decimal:
    """Express nano-USD as an exact ``Decimal`` of US dollars with nine decimal places.

    Args:
        nanos: An amount in nano-USD.

    Returns:
        The same amount in USD, exactly (``nanos_to_usd(1) == Decimal("0.000000001")``).

    Raises:
        TypeError: ``nanos`` is not an ``int``.
    """
    given = cast("object", nanos)
    if isinstance(given, bool) or not isinstance(given, int):
        raise TypeError(f"nanos must be an int, not {type(given).__name__}")
    sign, digits, _ = Decimal(nanos).as_tuple()
    # Built from its digits, so no context precision can round a large amount.
    return Decimal((sign, digits, -9))


def nanos_to_json_number(nanos: int) -> float | int:
    """Convert nano-USD to the JSON number of USD that goes on the wire.

    Whole dollars come back as an ``int``, which is exact at any size. Otherwise the result is the float
    nearest to the exact amount; for amounts of at most 15 significant digits (every amount below
    10**15 nanos, i.e. one million dollars) its ``repr()`` is exactly that decimal, so a JSON encoder writes
    the exact value. Larger amounts with fractional cents are the nearest float.

    Args:
        nanos: An amount in nano-USD.

    Returns:
        A JSON-ready number of USD.

    Raises:
        TypeError: ``nanos`` is not an ``int``.
    """
    exact = nanos_to_usd(nanos)
    whole, rest = divmod(nanos, NANOS_PER_USD)
    if rest == 0:
        return whole
    # float(str) is correctly rounded, and a float's repr is the shortest decimal that reads back as it:
    # with at most 15 significant digits (DBL_DIG) that decimal is the exact amount itself.
    return float(str(exact))

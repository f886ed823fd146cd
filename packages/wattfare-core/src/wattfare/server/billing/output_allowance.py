"""An app's output allowance: the `max_tokens` Wattfare sends and holds for its requests that send none.

Set per app (developer console, `PATCH /api/v1/app`, `wattfare apps allowance`); unset, the server's
defaults apply (`WATTFARE_OUTPUT_ALLOWANCE_TOKENS`, `WATTFARE_REASONING_OUTPUT_ALLOWANCE_TOKENS`). Why not a
model's maximum: the hold is what parallel requests share a cap by, and a 64k-token hold for a 300-token
answer lets a $5 cap run five requests at once.
"""

from __future__ import annotations

MAX_OUTPUT_ALLOWANCE = 1_000_000
_DEFAULT_WORDS = frozenset({"", "default", "none", "null"})


class AllowanceError(ValueError):
    """Not an output allowance: a whole number of tokens from 1 to `MAX_OUTPUT_ALLOWANCE`, or "default"."""


def parse_allowance(value: object) -> int | None:
    """An allowance given as a JSON value or typed text; None means the server's default.

    Raises:
        AllowanceError: `value` is neither a whole number of tokens in range nor "default" / null / empty.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        if text.lower() in _DEFAULT_WORDS:
            return None
        if not (text.isascii() and text.isdigit()):
            raise AllowanceError(f"a whole number of tokens, or 'default' (not {value!r})")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_ALLOWANCE:
        raise AllowanceError(f"a whole number of tokens from 1 to {MAX_OUTPUT_ALLOWANCE:,}")
    return value

"""Telling one end user's refusal from a provider failure, for `FallbackModel(fallback_on=...)`.

A spent cap, a missing connection, rejected funding, a spent one-time grant or a budget still busy after the
client's retries is the state of one end user (or grant): no other model may serve that user instead, or the
fallback (a provider outside Wattfare, on your key) would answer them on your bill. Pydantic AI's `FallbackModel`
falls back on every `ModelAPIError` by default, these included, so give it `not_a_user_refusal`:

    >>> from pydantic_ai.models.fallback import FallbackModel
    >>> FallbackModel(wattfare_model, backup_model, fallback_on=not_a_user_refusal)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Final

from pydantic_ai.exceptions import ModelAPIError

__all__ = ["USER_REFUSAL_CODES", "not_a_user_refusal"]

USER_REFUSAL_CODES: Final = frozenset(
    {"not_connected", "budget_exceeded", "funding_invalid", "grant_invalid", "budget_busy"}
)
"""Wattfare's codes for one end user's (or one grant's) state (`ModelHTTPError.provider_error_code`): 402s, and
the busy 429."""


def not_a_user_refusal(exc: Exception) -> bool:
    """Whether `FallbackModel` may fall back on `exc`: any model API error except Wattfare refusing this user.

    Args:
        exc: The error the model raised.
    """
    return isinstance(exc, ModelAPIError) and exc.provider_error_code not in USER_REFUSAL_CODES

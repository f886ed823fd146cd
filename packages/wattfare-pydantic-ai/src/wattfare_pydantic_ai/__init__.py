"""WattfareProvider: Pydantic AI agents whose model requests are charged to your app's end users.

    >>> from pydantic_ai import Agent
    >>> from pydantic_ai.models.openai import OpenAIChatModel
    >>> from wattfare_pydantic_ai import WattfareProvider
    >>> provider = WattfareProvider(user_id="user_42")  # doctest: +SKIP  (reads WATTFARE_SECRET_KEY)
    >>> agent = Agent(OpenAIChatModel("openai/gpt-4o-mini", provider=provider))  # doctest: +SKIP

A refusal is Pydantic AI's `ModelHTTPError` carrying Wattfare's code: `exc.provider_error_code` is
`budget_exceeded`, `not_connected`, `funding_invalid`, `grant_invalid` (402, also a `ModelQuotaExceededError`),
`budget_busy` (429), `auth`, `model_not_found`, ... It reaches you once: nothing retries a 402. Under a
`FallbackModel`, pass `fallback_on=not_a_user_refusal` so that no other model serves a user Wattfare refused.
"""

from __future__ import annotations

from wattfare_pydantic_ai._version import __version__
from wattfare_pydantic_ai.provider import WattfareProvider
from wattfare_pydantic_ai.refusals import USER_REFUSAL_CODES, not_a_user_refusal

__all__ = ["USER_REFUSAL_CODES", "WattfareProvider", "__version__", "not_a_user_refusal"]

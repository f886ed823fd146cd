"""The `wattfare/<model>` LiteLLM provider: LiteLLM calls, Routers and proxies charged to your app's users.

    >>> import litellm, wattfare_litellm
    >>> wattfare_litellm.register()  # doctest: +SKIP  (once, at start-up)
    >>> litellm.completion(  # doctest: +SKIP
    ...     model="wattfare/anthropic/claude-sonnet-4",
    ...     messages=[{"role": "user", "content": "Hi"}],
    ...     user="u_123",  # the end user who pays
    ... )

A member's one-time grant pays instead with `wattfare_grant=<grant token>` in place of `user=`; once it is spent,
the call raises `WattfareGrantInvalidError`.

`wattfare_litellm.register_models()` (once, after `register()`) tells LiteLLM about every model Wattfare
serves, from one `GET /models`: `litellm.get_model_info("wattfare/<model>")`, `supports_function_calling`,
`supports_vision`, ... then answer from Wattfare's listing.

For the LiteLLM proxy, name the default handler in `config.yaml`:
`litellm_settings: {custom_provider_map: [{provider: wattfare, custom_handler: wattfare_litellm.wattfare_llm}]}`.
A spent cap, a missing connection or a budget still busy after the SDK's retries raises a
`WattfareUserRefusalError` subclass, which a Router neither retries, nor lets cool the shared deployment
down, nor falls back from (see `wattfare_litellm.errors`).
"""

from __future__ import annotations

from wattfare_litellm._model_info import aregister_models, register_models
from wattfare_litellm._registration import register
from wattfare_litellm._version import __version__
from wattfare_litellm.errors import (
    WattfareBudgetBusyError,
    WattfareBudgetExceededError,
    WattfareFundingInvalidError,
    WattfareGrantInvalidError,
    WattfareNotConnectedError,
    WattfarePaymentRequiredError,
    WattfareUserRefusalError,
)
from wattfare_litellm.handler import WattfareLLM, wattfare_llm

__all__ = [
    "WattfareBudgetBusyError",
    "WattfareBudgetExceededError",
    "WattfareFundingInvalidError",
    "WattfareGrantInvalidError",
    "WattfareLLM",
    "WattfareNotConnectedError",
    "WattfarePaymentRequiredError",
    "WattfareUserRefusalError",
    "__version__",
    "aregister_models",
    "register",
    "register_models",
    "wattfare_llm",
]

"""Registering the `wattfare` provider with LiteLLM, in one call."""

from __future__ import annotations

import litellm
from litellm.utils import custom_llm_setup

from wattfare_litellm._error_mapping import PROVIDER
from wattfare_litellm.handler import WattfareLLM, wattfare_llm


def register(handler: WattfareLLM | None = None) -> WattfareLLM:
    """Make `wattfare/<model>` a LiteLLM provider for `litellm.completion`, Routers and everything in this process.

    Idempotent: a handler registered earlier for `wattfare` is replaced. LiteLLM's provider map is
    process-wide, so call this once at start-up, before the first completion.

    Args:
        handler: The handler to install; the default `wattfare_llm` (settings from the deployment's
            `api_key` / `api_base`, else `WATTFARE_SECRET_KEY` / `WATTFARE_BASE_URL`) when None.

    Returns:
        The installed handler.

    Example:
        >>> import litellm, wattfare_litellm
        >>> wattfare_litellm.register()  # doctest: +ELLIPSIS
        <WattfareLLM ...>
        >>> litellm.completion(  # doctest: +SKIP
        ...     model="wattfare/anthropic/claude-sonnet-4", messages=[{"role": "user", "content": "Hi"}], user="u_123"
        ... )
    """
    installed = handler if handler is not None else wattfare_llm
    others = [item for item in litellm.custom_provider_map if item["provider"] != PROVIDER]
    litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": installed}]
    # LiteLLM adds the name to its provider lists on the next call; do it now so a Router built
    # before any call already knows the provider.
    custom_llm_setup()
    return installed

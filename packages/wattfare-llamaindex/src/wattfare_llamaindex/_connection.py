"""The Wattfare clients behind a `WattfareLLM`: one sync client, one async client per event loop, one catalog.

Per-user copies (`WattfareLLM.for_user`, `for_grant`) share one `Connection`, hence its connection pools; it also
hands out the SDK's handle for whoever pays a request, one app user or one one-time grant.

An `httpx.AsyncClient`'s pooled connections belong to the event loop that opened them, and LlamaIndex
code often runs `asyncio.run(...)` more than once with the same LLM; so the async client is kept per
loop, and a new loop gets a new one (unless the caller passed their own `httpx.AsyncClient`).
"""

from __future__ import annotations

import asyncio
import os
import weakref

import httpx

from wattfare import (
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
    UsageError,
    Wattfare,
    WattfareGrant,
    WattfareUser,
)
from wattfare_llamaindex._catalog import ModelCatalog

__all__ = ["Connection"]

# The same variables the core SDK reads, resolved once so that every client of a connection agrees.
_SECRET_KEY_ENV = "WATTFARE_SECRET_KEY"  # noqa: S105  (a variable name, not a secret)
_BASE_URL_ENV = "WATTFARE_BASE_URL"


class Connection:
    """The clients and the model catalog one `WattfareLLM` and its per-user copies share.

    Args:
        secret_key: The app's secret key; `WATTFARE_SECRET_KEY` when None.
        base_url: The Wattfare server; `WATTFARE_BASE_URL`, then the SDK's default, when None.
        timeout: Seconds per request (per read for a stream).
        max_retries: The SDK's retries of what a retry can fix; never of a 402.
        http_client: An `httpx.Client` for the sync client (the caller closes it).
        async_http_client: An `httpx.AsyncClient` for the async client (the caller closes it).

    Raises:
        UsageError: The key is missing or malformed, or the base URL is invalid (from the SDK).
    """

    def __init__(
        self,
        *,
        secret_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._secret_key = secret_key if secret_key is not None else os.environ.get(_SECRET_KEY_ENV)
        self._base_url = base_url or os.environ.get(_BASE_URL_ENV)
        self._timeout = timeout
        self._max_retries = max_retries
        self._async_http_client = async_http_client
        # Built now so that a bad key fails at construction, as `Wattfare()` does.
        self.sync = Wattfare(
            self._secret_key, self._base_url, timeout=timeout, max_retries=max_retries, http_client=http_client
        )
        self.catalog = ModelCatalog(self.sync.models)
        self._async: AsyncWattfare | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.sync!r}>"

    def __deepcopy__(self, memo: dict[int, object]) -> Connection:
        # Pools and the model list are shared resources: a copy of the LLM, deep or not, shares them.
        return self

    def async_client(self) -> AsyncWattfare:
        """The async client for the running event loop (call it from a coroutine)."""
        loop = asyncio.get_running_loop()
        current = self._async
        if current is not None and (self._async_http_client is not None or self._loop() is loop):
            return current
        current = AsyncWattfare(
            self._secret_key,
            self._base_url,
            timeout=self._timeout,
            max_retries=self._max_retries,
            http_client=self._async_http_client,
        )
        self._async, self._async_loop = current, weakref.ref(loop)
        return current

    def check_payer(self, owner: str, user_id: str | None, grant: str | None) -> None:
        """`UsageError` unless exactly one of a user and a grant is named, in a form the SDK accepts.

        A request names one or the other (the server refuses both, and neither); checked when a model is built,
        rather than at its first call.
        """
        if (user_id is None) == (grant is None):
            raise UsageError(
                f"{owner} is charged to exactly one of your app's users (user_id=...) and a member's one-time grant"
                f" (grant=...), {'not both' if user_id is not None else 'and neither was given'}"
            )
        self.payer(user_id, grant)

    def payer(self, user_id: str | None, grant: str | None) -> WattfareUser | WattfareGrant:
        """The sync client's handle for whoever pays: the grant when one is named, else the user."""
        return self.sync.grant(grant) if grant is not None else self.sync.user(user_id or "")

    def async_payer(self, user_id: str | None, grant: str | None) -> AsyncWattfareUser | AsyncWattfareGrant:
        """`payer`, on the running event loop's async client (call it from a coroutine)."""
        client = self.async_client()
        return client.grant(grant) if grant is not None else client.user(user_id or "")

    def close(self) -> None:
        """Close the sync client's pool."""
        self.sync.close()

    async def aclose(self) -> None:
        """Close the async client's pool, if this event loop opened one."""
        if self._async is not None and (
            self._async_http_client is not None or self._loop() is asyncio.get_running_loop()
        ):
            client, self._async, self._async_loop = self._async, None, None
            await client.aclose()

    def _loop(self) -> asyncio.AbstractEventLoop | None:
        return self._async_loop() if self._async_loop is not None else None

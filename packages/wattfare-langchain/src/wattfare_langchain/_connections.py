"""Where ChatWattfare's core clients live: one per settings, shared by every ChatWattfare that has them.

Building a core client costs tens of milliseconds (an SSL context) and each one holds a connection
pool, so a web app that builds a ChatWattfare per request (or calls `for_user` per request) must not
build a client per request. The sync client is shared process-wide. An async client is tied to the
event loop that opened its connections (a pooled connection cannot be used from another loop), so
there is one per running loop, forgotten with the loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass, field
from typing import TypedDict

from wattfare import AsyncWattfare, Wattfare


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What makes two ChatWattfare share a client: the same key, server, timeout and retries."""

    secret_key: str | None = field(repr=False)
    base_url: str | None
    timeout: float | None
    max_retries: int


class ClientPool:
    """The process's core clients, by settings (and, for async clients, by event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: dict[ClientSettings, Wattfare] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ClientSettings, AsyncWattfare]] = (
            weakref.WeakKeyDictionary()
        )

    def sync_client(self, settings: ClientSettings) -> Wattfare:
        """The shared sync client for these settings, built on first use."""
        with self._lock:
            client = self._sync.get(settings)
            if client is None:
                client = Wattfare(settings.secret_key, settings.base_url, **_options(settings))
                self._sync[settings] = client
            return client

    def async_client(self, settings: ClientSettings) -> AsyncWattfare:
        """The async client for these settings on the running event loop, built on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._async.setdefault(loop, {})
            client = clients.get(settings)
            if client is None:
                client = AsyncWattfare(settings.secret_key, settings.base_url, **_options(settings))
                clients[settings] = client
            return client

    def close(self, settings: ClientSettings) -> None:
        """Close and forget the sync client for these settings; the next call builds a new one."""
        with self._lock:
            client = self._sync.pop(settings, None)
        if client is not None:
            client.close()

    async def aclose(self, settings: ClientSettings) -> None:
        """Close and forget the running loop's async client for these settings."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.get(loop, {}).pop(settings, None)
        if client is not None:
            await client.aclose()


class _Options(TypedDict, total=False):
    timeout: float
    max_retries: int


def _options(settings: ClientSettings) -> _Options:
    # No timeout given: the core client's default, rather than a second copy of it here.
    options = _Options(max_retries=settings.max_retries)
    if settings.timeout is not None:
        options["timeout"] = settings.timeout
    return options


POOL = ClientPool()
"""The one pool of the process."""

"""Pushing revocations to streams in flight, so spending stops within a second.

A revocation made through this process wakes its streams at once. One made elsewhere (another worker
or instance) is found by a single background poll that reads the state of every connection with a
stream open here, twice a second: one indexed query however many streams are open.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from wattfare.server.periodic import Periodic
from wattfare.server.store.protocols import Connections

log = logging.getLogger("wattfare.revocations")


class Revocations:
    """Futures that resolve when a connection with streams in flight is revoked.

    Futures rather than `asyncio.Event`s: a stream waits on one beside its other work with `asyncio.wait`,
    which takes a future as it is, where an event would need a task of its own per stream.
    """

    def __init__(self, store: Connections, poll_seconds: float = 0.5) -> None:
        """Watch connections in `store`, polling every `poll_seconds` for revocations made elsewhere."""
        self._store = store
        self._poll_seconds = poll_seconds
        self._watched: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._poller: Periodic | None = None

    def watch(self, connection_id: str) -> asyncio.Future[None]:
        """A future done when `connection_id` is revoked; call `unwatch` when the stream ends."""
        revoked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watched[connection_id].add(revoked)
        return revoked

    def unwatch(self, connection_id: str, revoked: asyncio.Future[None]) -> None:
        """Stop watching for one stream."""
        futures = self._watched.get(connection_id)
        if futures is not None:
            futures.discard(revoked)
            if not futures:
                del self._watched[connection_id]

    def revoked(self, connection_id: str) -> None:
        """Wake every stream of a connection revoked in this process."""
        for revoked in self._watched.get(connection_id, ()):
            if not revoked.done():
                revoked.set_result(None)

    async def poll_once(self) -> None:
        """Read the state of every watched connection and wake the revoked ones."""
        if not self._watched:
            return
        states = await self._store.connection_states(list(self._watched))
        for connection_id, state in states.items():
            if state != "active":
                self.revoked(connection_id)

    def start(self) -> None:
        """Poll in the background."""
        self._poller = Periodic(self.poll_once, self._poll_seconds, what="the revocation poll", log=log)
        self._poller.start()

    async def stop(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            await self._poller.stop()

"""Work repeated in the background for as long as the server runs (sweeping holds, polling revocations, prices)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    """Runs `action` now and then every `period` seconds, until `stop`.

    A run that raises is logged and the next one still happens: a store blip must not end the sweeping of
    holds or the watching of revocations for the rest of the process's life.
    """

    def __init__(self, action: Callable[[], Awaitable[object]], period: float, *, what: str, log: logging.Logger):
        """Repeat `action` every `period` seconds; `what` names it in the log when a run fails."""
        self._action = action
        self._period = period
        self._what = what
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start repeating, on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._repeat(), name=self._what)

    async def stop(self) -> None:
        """Stop repeating (a run in progress is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _repeat(self) -> None:
        while True:
            try:
                await self._action()
            except Exception:
                self._log.exception("%s failed", self._what)
            await asyncio.sleep(self._period)

"""Sending email off the request's critical path: the page answers at once, the courier sends afterwards.

A request hands the courier an email, or a coroutine that composes one (the password reset: whether the email
belongs to a member, the link's row, the letter), and answers without waiting. So neither the answer nor its
timing depends on what the courier does: an unknown address and a member's take the same time. Each send is a
task the courier keeps; `drain` awaits them all (at shutdown, and in tests). A send that fails is logged,
never raised: no page fails because a mail server is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wattfare.server.mail.mailer import Mailer
from wattfare.server.mail.message import Email, masked

log = logging.getLogger("wattfare.server")

Composer = Callable[[], Awaitable[Email | None]]


class Courier:
    """Sends emails through `mailer` in tasks of its own, awaited by `drain`."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._tasks: set[asyncio.Task[None]] = set()

    def send_soon(self, email: Email) -> None:
        """Send `email` after the caller moves on."""

        async def ready() -> Email:
            return email

        self.compose_and_send_soon(ready)

    def compose_and_send_soon(self, compose: Composer) -> None:
        """Run `compose` after the caller moves on, and send the email it returns (None: nothing to send)."""
        task = asyncio.get_running_loop().create_task(self._deliver(compose))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every email handed over so far (and any handed over meanwhile) was sent or given up."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(self, compose: Composer) -> None:
        email: Email | None = None
        try:
            email = await compose()
            if email is not None:
                await self.mailer.send(email)
        except Exception as exc:  # a mail server or database outage: logged, the page already answered
            to = masked(email.to) if email is not None else "a member"
            log.warning("mail to %s not sent: %s: %s", to, type(exc).__name__, exc)

"""The mailers: SMTP (the standard library's smtplib, in a worker thread) and the outbox folder of .eml files.

`Mailer` is the seam: anything that sends an `Email` (a later durable outbox too) calls `send` and needs nothing
else. `mailer_for` picks one from the settings: SMTP when `WATTFARE_SMTP_URL` is set, else the outbox folder next
to the SQLite database (`.wattfare/mail/` for `wattfare dev`), so every flow works with no mail server.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from wattfare.server.mail.message import Email, masked, mime_message, one_line
from wattfare.server.settings import Settings, SmtpServer

log = logging.getLogger("wattfare.server")

DEFAULT_OUTBOX = Path(".wattfare") / "mail"
SMTP_TIMEOUT_SECONDS = 30.0


class Mailer(Protocol):
    """Sends one email, or raises (`OSError`, `smtplib.SMTPException`) when it could not."""

    async def send(self, email: Email) -> None:
        """Send `email`."""
        ...


class SmtpMailer:
    """Sends through an SMTP server: plain, STARTTLS or TLS from the start, logged in when the URL has a user.

    smtplib blocks, so each message is sent in a worker thread on a connection of its own; `timeout` bounds
    each step (connect, each command), so a mail server that stops answering cannot hold a sender forever.
    """

    def __init__(self, server: SmtpServer, sender: str, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self.server = server
        self.sender = sender
        self.timeout = timeout

    async def send(self, email: Email) -> None:
        """Send `email` through the server."""
        await asyncio.to_thread(self._send, email)

    def _send(self, email: Email) -> None:
        server = self.server
        context = ssl.create_default_context()
        client = (
            smtplib.SMTP_SSL(server.host, server.port, timeout=self.timeout, context=context)
            if server.security == "tls"
            else smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        )
        with client:
            if server.security == "starttls":
                client.starttls(context=context)
            if server.username is not None:
                client.login(server.username, server.password or "")
            client.send_message(mime_message(email, self.sender))


class OutboxMailer:
    """Writes each email as an .eml file in `folder` (made when first needed) and logs one line saying where."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    async def send(self, email: Email) -> None:
        """Write `email` to the outbox folder."""
        path = await asyncio.to_thread(self._write, email)
        log.info("mail to %s: %s → %s", masked(email.to), one_line(email.subject), path)

    def _write(self, email: Email) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{stamp}-{secrets.token_hex(4)}.eml"
        path.write_bytes(mime_message(email, self.sender).as_bytes())
        return path


def outbox_folder(database_url: str) -> Path:
    """Where the outbox mailer writes: `mail/` beside a SQLite database file, else `.wattfare/mail/`."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        if path not in ("", ":memory:"):
            return Path(path).parent / "mail"
    return DEFAULT_OUTBOX


def mailer_for(settings: Settings) -> Mailer:
    """SMTP when `WATTFARE_SMTP_URL` is set, else the outbox folder."""
    server = settings.smtp_server
    if server is not None:
        return SmtpMailer(server, settings.mail_from)
    return OutboxMailer(outbox_folder(settings.database_url), settings.mail_from)

"""A real SMTP server for tests (aiosmtpd, in a thread of its own on a loopback port), keeping what it receives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.support.wattfare_server import free_port


@dataclass
class Received:
    """One message as the server got it: the envelope's sender and recipients, the parsed message, the login."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage
    login: str | None

    @property
    def text(self) -> str:
        """The plain-text body, decoded, its lines ending in `\\n` (SMTP carries them as CRLF)."""
        body = self.message.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        return body.get_content().replace("\r\n", "\n")


@dataclass
class SmtpServer:
    """The running server: its `url` for `WATTFARE_SMTP_URL`, and the messages it received so far."""

    port: int
    username: str | None
    password: str | None
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        """`smtp://[user:pass@]127.0.0.1:port`."""
        login = f"{self.username}:{self.password}@" if self.username is not None else ""
        return f"smtp://{login}127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Received]:
        """The messages sent to `address`."""
        return [item for item in self.received if address in item.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15) -> list[Received]:
        """Wait (in a synchronous test) until `count` messages reached `address`; return them."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            assert time.monotonic() < deadline, f"no email reached {address} within {timeout} s"
            time.sleep(0.05)
        return self.to(address)

    # aiosmtpd's hooks, called on its own thread's loop.

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        # The bytes as sent (`content` is text when the server decodes data, which this one does not).
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.decode() if session.authenticated and isinstance(session.auth_data, bytes) else None
        self.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), message, login))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@contextmanager
def smtp_server(username: str | None = None, password: str | None = None) -> Iterator[SmtpServer]:
    """A running SMTP server on 127.0.0.1; with `username`, it accepts AUTH with that login (over plain text)."""
    server = SmtpServer(free_port(), username, password)
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        authenticator=server.authenticate if username is not None else None,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()

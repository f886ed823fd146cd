"""One email to one member, as plain text, and the MIME message it becomes on the way out."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr


@dataclass(frozen=True, slots=True)
class Email:
    """A plain-text email to one address.

    Attributes:
        to: the recipient's address.
        subject: one line (any line break in it is folded to a space).
        text: the body, plain text.
    """

    to: str
    subject: str
    text: str


def one_line(text: str) -> str:
    """`text` with every run of whitespace, line breaks included, as one space: fit for a header."""
    return " ".join(text.split())


def mime_message(email: Email, sender: str) -> EmailMessage:
    """The message as it is sent: `From`, `To`, `Subject`, `Date`, a `Message-ID` on the sender's domain, the text."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = one_line(email.subject)
    message["Date"] = formatdate(usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # Plain ASCII stays as written (7bit allows lines of 998 characters), so a link reads whole in an .eml file.
    message.set_content(email.text, cte="7bit" if email.text.isascii() else "quoted-printable")
    return message


def masked(address: str) -> str:
    """An address fit for a log line: its first character and its domain (`a***@example.com`)."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"

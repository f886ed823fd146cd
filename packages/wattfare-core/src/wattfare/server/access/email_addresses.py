"""Email addresses as member accounts are keyed, whether typed on a page or given to the CLI."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_EMAIL_LENGTH = 254


def normalize_email(text: str | None) -> str | None:
    """The email as accounts are keyed (trimmed, lower-case), or None when it does not look like one."""
    email = (text or "").strip().lower()
    # Printable only: a control character is in no one's email (and NUL is in no PostgreSQL text either).
    return email if len(email) <= _MAX_EMAIL_LENGTH and _EMAIL.fullmatch(email) and email.isprintable() else None

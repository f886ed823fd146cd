"""The values the `wattfare` command's arguments take: names, emails, amounts of USD, durations, keys.

Each is a click parameter type, so a mistake is refused while the command line is parsed (exit status 2,
click's usage error), before anything is read or written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import click

from wattfare._key_shape import key_shape_problem
from wattfare.metering import usd_to_nanos
from wattfare.server.access.email_addresses import normalize_email
from wattfare.server.access.keys import hash_key

MAX_APP_NAME_LENGTH = 100  # the developer console's limit too
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LONGEST_GRACE = timedelta(days=365)


class AppName(click.ParamType):  # pyright: ignore[reportMissingTypeArgument] - generic only since click 8.4
    """An app's name: 1 to 100 printable characters once trimmed."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The trimmed name, or a usage error."""
        text = str(value).strip()
        if not text:
            self.fail("the app needs a name (it is shown to users on the consent page)", param, ctx)
        if len(text) > MAX_APP_NAME_LENGTH or not text.isprintable():
            self.fail(f"use at most {MAX_APP_NAME_LENGTH} printable characters", param, ctx)
        return text


class EmailAddress(click.ParamType):  # pyright: ignore[reportMissingTypeArgument] - generic only since click 8.4
    """A member's email, normalised as accounts are keyed (trimmed, lower-case)."""

    name = "email"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The normalised address, or a usage error."""
        address = normalize_email(str(value))
        if address is None:
            self.fail(f"{value!r} is not an email address", param, ctx)
        return address


class UsdAmount(click.ParamType):  # pyright: ignore[reportMissingTypeArgument] - generic only since click 8.4
    """An amount of US dollars such as `10` or `2.50`, as integer nano-USD (zero or more)."""

    name = "usd"

    def __init__(self, *, positive: bool = False) -> None:
        """Refuse zero too when `positive`."""
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The amount in nano-USD, or a usage error."""
        if isinstance(value, int):
            return value
        try:
            amount = usd_to_nanos(str(value).strip(), rounding="down")
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not an amount of US dollars (write it like 10 or 2.50)", param, ctx)
        if amount < 0 or (self.positive and amount == 0):
            self.fail("must be more than zero" if self.positive else "must not be negative", param, ctx)
        return amount


class Duration(click.ParamType):  # pyright: ignore[reportMissingTypeArgument] - generic only since click 8.4
    """A duration such as `90s`, `30m`, `24h`, `7d` or `0` (at most 365 days)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        """The duration, or a usage error."""
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        match = _DURATION.fullmatch(text)
        if text == "0":
            return timedelta(0)
        if match is None:
            self.fail(f"{value!r} is not a duration: write a number and a unit (s, m, h or d), e.g. 24h", param, ctx)
        duration = timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
        if duration > _LONGEST_GRACE:
            self.fail("use at most 365d", param, ctx)
        return duration


@dataclass(frozen=True, slots=True)
class KeyReference:
    """A key named on the command line: by its id (`key_…`), or by its whole plaintext (looked up by hash).

    Attributes:
        key_id: the id given, if one was.
        key_hash: the hash of the whole key given, if one was.
        label: how to name it back to the operator (never the plaintext of a secret key).
    """

    key_id: str | None
    key_hash: str | None
    label: str


class KeyArgument(click.ParamType):  # pyright: ignore[reportMissingTypeArgument] - generic only since click 8.4
    """A key id such as `key_3kq…`, or a whole key (`sk_…` or `pk_…`); a truncated key is refused as such."""

    name = "key"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> KeyReference:
        """The reference, or a usage error."""
        if isinstance(value, KeyReference):
            return value
        text = str(value).strip()
        problem = key_shape_problem(text)
        if problem is not None:
            self.fail(problem, param, ctx)
        if text.startswith("key_"):
            return KeyReference(text, None, text)
        if not text.startswith(("sk_", "pk_")):
            self.fail("give a key id (key_…, from `wattfare keys list`) or a whole key (sk_… or pk_…)", param, ctx)
        kind = "secret" if text.startswith("sk_") else "publishable"
        return KeyReference(None, hash_key(text), f"the {kind} key given")

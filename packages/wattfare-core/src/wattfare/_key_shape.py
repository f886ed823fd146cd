"""Telling a truncated or mistyped API key from a wrong one, before it is sent anywhere.

Wattfare keys are printable ASCII without spaces (`sk_test_<appId>_<secret>`, letters, digits, `_` and `-`).
A key that contains an ellipsis, whitespace or any other non-ASCII character was cut short by a terminal or a
table, or mangled by a copy: saying so beats the 401 (or the "invalid header" error) it would otherwise get.
Shared by the SDK, which checks the keys it is given, and by the `wattfare` command, which checks the keys
an operator types. The problem never quotes the key itself.
"""

from __future__ import annotations

import unicodedata

_ELLIPSES = ("\u2026", "...")
_WHITESPACE_NAMES = {"\n": "a line break", "\r": "a line break", "\t": "a tab", " ": "a space"}


def _describe(char: str) -> str:
    if char in _WHITESPACE_NAMES:
        return _WHITESPACE_NAMES[char]
    if char.isspace():
        return f"a space ({unicodedata.name(char, f'U+{ord(char):04X}').lower()})"
    if not char.isprintable():
        return f"an invisible character (U+{ord(char):04X})"
    return f"'{char}'"


def key_shape_problem(key: str) -> str | None:
    """Why `key` cannot be a whole Wattfare key as typed, or None when its characters are plausible.

    Args:
        key: The key as given (leading and trailing whitespace already stripped by the caller, if wanted).

    Returns:
        A sentence such as "This API key looks truncated or mistyped (it contains '…'): ...", or None.
    """
    ellipsis = next((e for e in _ELLIPSES if e in key), None)
    if ellipsis is not None:
        found: str | None = f"'{ellipsis}'"
    else:
        found = next((_describe(c) for c in key if not c.isascii() or c.isspace() or not c.isprintable()), None)
    if found is None:
        return None
    return (
        f"This API key looks truncated or mistyped (it contains {found}): "
        "copy the whole key again; Wattfare keys are letters, digits, '_' and '-' only."
    )
